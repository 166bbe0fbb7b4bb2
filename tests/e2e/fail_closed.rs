//! Promise 8: with the database or the HSM unavailable nothing is accepted (503 with a clear
//! code), and the service recovers by itself when they return.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use hsm_otp::oath::vectors::RFC4226_CODES;
use serde_json::json;

use crate::helpers::{Env, Server, ServerOptions, TcpProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_unreachable_nothing_is_accepted_until_it_returns() {
    let env = Env::new();
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied = env
        .database_url
        .replacen(":5432/", &format!(":{}/", proxy.addr.port()), 1);
    assert_ne!(
        proxied, env.database_url,
        "the test database is reached on port 5432"
    );
    let server = Server::start_with(
        &env,
        ServerOptions {
            env: vec![("HSM_OTP_DATABASE_URL".into(), proxied)],
        },
    );
    let api = server.api(&env.channel_key);
    let id = api.enrol_rfc_hotp("alice").await;

    proxy.cut();
    let (status, v) = api
        .post(
            &format!("/v1/tokens/{id}/verify"),
            json!({"otp": RFC4226_CODES[0]}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str()),
        (503, Some("database_unavailable"))
    );
    let (status, body) = server.operator_get("/readyz").await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert_eq!(
        server.operator_get("/healthz").await.0.as_u16(),
        200,
        "still alive"
    );

    proxy.restore();
    // The refused code was not consumed: it is accepted now, once.
    assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "accept");
    assert_eq!(server.operator_get("/readyz").await.0.as_u16(), 200);
}

/// A network HSM: `p11-kit server` exporting the SoftHSM token over a Unix socket, used
/// through `p11-kit-client.so`. Stopping it is the HSM going away.
struct RemoteHsm {
    child: Option<Child>,
    socket: PathBuf,
    conf: PathBuf,
    label: String,
}

impl RemoteHsm {
    fn start(env: &Env) -> Self {
        let mut remote = Self {
            child: None,
            socket: env.dir.path().join("p11-kit.sock"),
            conf: env.softhsm_conf.clone(),
            label: env.token_label.clone(),
        };
        remote.resume();
        remote
    }

    fn resume(&mut self) {
        use std::os::unix::process::CommandExt;
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("p11-kit")
            .args(["server", "-f", "-n"])
            .arg(&self.socket)
            .args(["--provider", hsm_otp::config::DEFAULT_PKCS11_MODULE])
            .arg(format!("pkcs11:token={}", self.label))
            .env("SOFTHSM2_CONF", &self.conf)
            .stdout(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("p11-kit is installed by .ci/install-deps");
        for _ in 0..100 {
            if self.socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }
}

impl Drop for RemoteHsm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn p11_kit_client() -> String {
    [
        "/usr/lib/x86_64-linux-gnu/pkcs11",
        "/usr/lib/aarch64-linux-gnu/pkcs11",
        "/usr/lib/pkcs11",
    ]
    .iter()
    .map(|d| format!("{d}/p11-kit-client.so"))
    .find(|p| std::path::Path::new(p).exists())
    .expect("p11-kit-client.so is installed by .ci/install-deps")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_hsm_gone_nothing_is_accepted_and_the_service_recovers_when_it_returns() {
    // Object storage: Debian 12's p11-kit RPC does not forward CKM_AES_KEY_WRAP_PAD. The
    // recovery under test (pool reset, re-initialisation, re-login) is the same in both modes.
    let env = Env::in_mode("object");
    let mut hsm = RemoteHsm::start(&env);
    let server = Server::start_with(
        &env,
        ServerOptions {
            env: vec![
                ("HSM_OTP_PKCS11_MODULE".into(), p11_kit_client()),
                ("P11_KIT_SERVER_ADDRESS".into(), hsm.address()),
            ],
        },
    );
    let api = server.api(&env.channel_key);
    let id = api.enrol_rfc_hotp("alice").await;
    assert_eq!(api.verify(&id, RFC4226_CODES[0]).await, "accept");

    hsm.stop();
    // Twice: the second request finds no device at all and must not leave the module half
    // initialised for the recovery.
    for _ in 0..2 {
        let path = format!("/v1/tokens/{id}/verify");
        let (status, v) = api.post(&path, json!({"otp": RFC4226_CODES[1]})).await;
        let code = v["error"]["code"].as_str();
        assert_eq!((status.as_u16(), code), (503, Some("hsm_unavailable")));
    }
    let (status, body) = server.operator_get("/readyz").await;
    assert_eq!(status.as_u16(), 503, "{body}");

    hsm.resume();
    // No restart of hsm-otp: the pool reconnects by itself, and the refused code is unused.
    assert_eq!(api.verify(&id, RFC4226_CODES[1]).await, "accept");
    assert_eq!(server.operator_get("/readyz").await.0.as_u16(), 200);
}

#[test]
fn serve_refuses_to_start_when_the_hsm_cannot_do_the_configured_seed_storage() {
    let env = Env::new(); // wrapped storage
    let mut hsm = RemoteHsm::start(&env);
    let out = env
        .command()
        .arg("serve")
        .env("HSM_OTP_PKCS11_MODULE", p11_kit_client())
        .env("P11_KIT_SERVER_ADDRESS", hsm.address())
        .output()
        .unwrap();
    hsm.stop();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrapped seed storage does not work with this HSM"),
        "{err}"
    );
}
