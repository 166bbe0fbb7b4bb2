//! A running `hsm-otp serve` process and an mTLS client for it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Env;

/// Options for one server process.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Extra environment for this process only.
    pub env: Vec<(String, String)>,
}

/// A server process; killed on drop.
pub struct Server {
    child: Child,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    ca_pem: String,
    identity_pem: String,
}

impl Server {
    /// Starts `hsm-otp serve` for `env`.
    pub fn start(env: &Env) -> Self {
        Self::start_with(env, ServerOptions::default())
    }

    /// Starts `hsm-otp serve` for `env` with extra options.
    pub fn start_with(env: &Env, options: ServerOptions) -> Self {
        let log = env
            .dir
            .path()
            .join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let mut child = env
            .command()
            .arg("serve")
            .envs(options.env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["event"] == "listening" {
                        let _ = tx.send(v);
                    }
                }
            }
        });
        let Ok(listening) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self {
            child,
            api: listening["api"].as_str().unwrap().parse().unwrap(),
            metrics: listening["metrics"].as_str().unwrap().parse().unwrap(),
            log,
            ca_pem: env.ca.cert_pem(),
            identity_pem: format!("{}{}", env.client.cert_pem, env.client.key_pem),
        }
    }

    /// The server's process id (the load generator reads its memory use).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client presenting the environment's client certificate and `channel_key`.
    pub fn api(&self, channel_key: &str) -> Api {
        self.api_with_identity(Some(&self.identity_pem), channel_key)
    }

    /// A client with the given identity (PEM certificate + key), or none.
    pub fn api_with_identity(&self, identity: Option<&str>, channel_key: &str) -> Api {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .resolve("localhost", self.api)
            .timeout(Duration::from_secs(30));
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        Api {
            client: builder.build().unwrap(),
            base: format!("https://localhost:{}", self.api.port()),
            key: channel_key.to_owned(),
        }
    }

    /// `GET http://metrics/PATH` → (status, body).
    pub async fn operator_get(&self, path: &str) -> (StatusCode, String) {
        let res = reqwest::get(format!("http://{}{path}", self.metrics))
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An mTLS client of the API with a channel key.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    /// Any request; returns status and JSON body (Null when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !self.key.is_empty() {
            req = req.header("X-Channel-Key", &self.key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request over the same mTLS connection pool, without the channel key header (the
    /// compatible surfaces carry their credentials their own way).
    pub fn bare(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Enrols a token; asserts 201; returns the answer.
    pub async fn enrol(&self, body: Value) -> Value {
        let (status, v) = self.post("/v1/tokens", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// Enrols the RFC 4226 seed as an HOTP token for `user`; returns its id.
    pub async fn enrol_rfc_hotp(&self, user: &str) -> String {
        let v = self
            .enrol(json!({"user": user, "type": "hotp", "seed_hex": super::RFC_SEED_HEX}))
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// Verifies `otp` on token `id`; asserts 200; returns the result.
    pub async fn verify(&self, id: &str, otp: &str) -> String {
        let (status, v) = self
            .post(&format!("/v1/tokens/{id}/verify"), json!({"otp": otp}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["result"].as_str().unwrap().to_owned()
    }

    /// Verifies `otp` for `user`; asserts 200; returns the result.
    pub async fn verify_user(&self, user: &str, otp: &str) -> String {
        let (status, v) = self
            .post(&format!("/v1/users/{user}/verify"), json!({"otp": otp}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["result"].as_str().unwrap().to_owned()
    }
}
