//! One test environment: a SoftHSM token directory, a database, a PKI and channels.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hsm_otp::pki::{self, DevCa, Issued};
use serde_json::Value;

/// Options for an environment.
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// `wrapped` or `object`.
    pub seed_storage: &'static str,
    /// Extra `HSM_OTP_*` settings for every process of this environment.
    pub settings: Vec<(String, String)>,
    /// A configuration file for every process (gateways, challenge limits).
    pub config_toml: Option<String>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            seed_storage: "wrapped",
            settings: Vec::new(),
            config_toml: None,
        }
    }
}

/// A SoftHSM token, a database, certificates and a default channel `app`.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub softhsm_conf: PathBuf,
    pub token_label: String,
    pub user_pin: String,
    pub database: String,
    pub database_url: String,
    admin_url: String,
    pub ca: DevCa,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client: Issued,
    pub options: EnvOptions,
    /// The key of channel `app`.
    pub channel_key: String,
}

impl Env {
    /// A fresh environment with channel `app`.
    pub fn new() -> Self {
        Self::with(EnvOptions::default())
    }

    /// A fresh environment in seed storage `mode`.
    pub fn in_mode(mode: &'static str) -> Self {
        Self::with(EnvOptions {
            seed_storage: mode,
            ..EnvOptions::default()
        })
    }

    /// A fresh environment whose processes read this configuration file.
    pub fn with_config(toml: String) -> Self {
        Self::with(EnvOptions {
            config_toml: Some(toml),
            ..EnvOptions::default()
        })
    }

    /// A fresh environment with these options.
    pub fn with(options: EnvOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (softhsm_conf, token_label, user_pin) = softhsm_token(dir.path());
        let admin_url = std::env::var("HSM_OTP_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://hsm_otp:hsm_otp@127.0.0.1:5432/postgres".into());
        let database = format!("hsm_otp_test_{}", uuid::Uuid::new_v4().simple());
        let database_url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => panic!("HSM_OTP_TEST_DATABASE_URL must name a database"),
        };
        hsm_otp::store::migrate::ensure_database(&database_url).unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        let server = ca.server().unwrap();
        let client = ca.client("test client").unwrap();
        let ca_file = dir.path().join("ca.pem");
        let server_cert = dir.path().join("server.pem");
        let server_key = dir.path().join("server.key");
        pki::write(&ca_file, &ca.cert_pem(), false).unwrap();
        pki::write(&server_cert, &server.cert_pem, false).unwrap();
        pki::write(&server_key, &server.key_pem, true).unwrap();
        let mut env = Self {
            dir,
            softhsm_conf,
            token_label,
            user_pin,
            database,
            database_url,
            admin_url,
            ca,
            ca_file,
            server_cert,
            server_key,
            client,
            options,
            channel_key: String::new(),
        };
        let out = env.cli(&["migrate", "--json"]);
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.channel_key = env.create_channel("app", &[]);
        env
    }

    /// Points every later process at a fresh, empty token (no service key yet).
    pub fn replace_token(&mut self) {
        let dir = self
            .dir
            .path()
            .join(format!("hsm-{}", uuid::Uuid::new_v4().simple()));
        let (conf, label, pin) = softhsm_token(&dir);
        (self.softhsm_conf, self.token_label, self.user_pin) = (conf, label, pin);
    }

    /// The environment every `hsm-otp` process of this test gets.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            (
                "SOFTHSM2_CONF".to_owned(),
                self.softhsm_conf.display().to_string(),
            ),
            ("HSM_OTP_DATABASE_URL".to_owned(), self.database_url.clone()),
            ("HSM_OTP_TOKEN_LABEL".to_owned(), self.token_label.clone()),
            ("HSM_OTP_USER_PIN".to_owned(), self.user_pin.clone()),
            (
                "HSM_OTP_SEED_STORAGE".to_owned(),
                self.options.seed_storage.to_owned(),
            ),
            (
                "HSM_OTP_TLS_CERT".to_owned(),
                self.server_cert.display().to_string(),
            ),
            (
                "HSM_OTP_TLS_KEY".to_owned(),
                self.server_key.display().to_string(),
            ),
            (
                "HSM_OTP_CLIENT_CA".to_owned(),
                self.ca_file.display().to_string(),
            ),
            ("HSM_OTP_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "HSM_OTP_METRICS_LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
        ];
        if let Some(toml) = &self.options.config_toml {
            let file = self.dir.path().join("config.toml");
            std::fs::write(&file, toml).unwrap();
            vars.push(("HSM_OTP_CONFIG".to_owned(), file.display().to_string()));
        }
        vars.extend(self.options.settings.iter().cloned());
        vars
    }

    /// A `hsm-otp` command with this environment (and nothing inherited that could interfere).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-otp"));
        for (k, _) in std::env::vars() {
            if k.starts_with("HSM_OTP_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.process_env());
        cmd
    }

    /// Runs `hsm-otp ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `hsm-otp token import --channel app --file FILE --json`.
    pub fn import_seed_file(&self, file: &Path) -> Output {
        let file = file.to_str().unwrap();
        self.cli(&[
            "token",
            "import",
            "--channel",
            "app",
            "--file",
            file,
            "--json",
        ])
    }

    /// Creates channel `name` with extra arguments; returns its key.
    pub fn create_channel(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["channel", "create", name, "--json"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "channel create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], name);
        v["channel_key"].as_str().unwrap().to_owned()
    }

    /// Creates a template for `channel` with `hsm-otp template create`; returns its `ref_id`.
    pub fn create_template(&self, channel: &str, lang: &str, text: &str) -> String {
        let out = self.cli(&[
            "template",
            "create",
            "--channel",
            channel,
            "--lang",
            lang,
            "--text",
            text,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "template create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["ref_id"].as_str().unwrap().to_owned()
    }

    /// The account number of `channel`, from `hsm-otp channel list --json`.
    pub fn account_number(&self, channel: &str) -> String {
        let listed: Value =
            serde_json::from_slice(&self.cli(&["channel", "list", "--json"]).stdout).unwrap();
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == channel)
            .unwrap();
        entry["account_number"].as_str().unwrap().to_owned()
    }

    /// `psql -Atc SQL` on this test's database.
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("psql")
            .args([self.database_url.as_str(), "-Atqc", query])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `pg_dump` of this test's database, as text.
    pub fn pg_dump(&self) -> String {
        let out = Command::new("pg_dump")
            .arg(&self.database_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool ARGS` logged in to this test's token.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.softhsm_conf)
            .args(["--module", hsm_otp::config::DEFAULT_PKCS11_MODULE])
            .args([
                "--token-label",
                &self.token_label,
                "--login",
                "--pin",
                &self.user_pin,
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-Atqc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            ])
            .output();
    }
}

/// A SoftHSM configuration and an initialised token in `dir`.
fn softhsm_token(dir: &Path) -> (PathBuf, String, String) {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let label = "hsm-otp-test".to_owned();
    let pin = format!("pin-{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", &label])
        .args(["--so-pin", "so-pin-1234", "--pin", &pin])
        .output()
        .expect("softhsm2-util is installed by .ci/install-deps");
    assert!(
        out.status.success(),
        "softhsm2-util: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (conf, label, pin)
}
