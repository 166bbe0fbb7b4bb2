//! `hsm-otp dev`: a ready local environment in one command.
//!
//! Installs what is missing (SoftHSM, OpenSC, a PostgreSQL server where none answers), then
//! creates — once, kept in `--dir` — a SoftHSM token, a development PKI, the database, the
//! schema and a demo channel bound to the development client certificate, prints a working
//! `curl` example, and serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::pki;

/// The installer shared with `.ci/run`.
const INSTALL_DEPS: &str = include_str!("../../.ci/install-deps");
const TOKEN_LABEL: &str = "hsm-otp-dev";
const DEMO_CHANNEL: &str = "demo";
/// Where the development database lives unless `HSM_OTP_DATABASE_URL`/`DATABASE_URL` say.
/// The role is the local development role that `.ci/install-deps --postgres` creates.
const DEFAULT_DATABASE_URL: &str = "postgres://hsm_otp:hsm_otp@127.0.0.1:5432/hsm_otp_dev";

/// Options of `hsm-otp dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the token, certificates, PINs and demo key are kept.
    #[arg(long, default_value = ".hsm-otp-dev")]
    dir: PathBuf,
    /// Set everything up, print the example, and exit without serving.
    #[arg(long)]
    no_serve: bool,
}

/// Runs `hsm-otp dev`.
pub(super) fn run(args: DevArgs, config_file: Option<&Path>) -> Result<(), CliError> {
    std::fs::create_dir_all(&args.dir).map_err(|e| other(&args.dir, e))?;
    let dir = std::fs::canonicalize(&args.dir).map_err(|e| other(&args.dir, e))?;
    let database_url = std::env::var("HSM_OTP_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());

    install_deps(false)?;
    if crate::store::migrate::ensure_database(&database_url).is_err() {
        // No server answers (or no role): install and start a local one, then try again.
        install_deps(true)?;
        crate::store::migrate::ensure_database(&database_url)
            .map_err(|e| CliError::Other(format!("database: {e}")))?;
    }
    let pin_file = softhsm_token(&dir)?;
    let pki = match pki_files(&dir) {
        Some(files) => files,
        None => {
            pki::write_dev_pki(&dir, "hsm-otp dev client")
                .map_err(CliError::Other)?
                .0
        }
    };
    crate::store::migrate::run(&database_url)
        .map_err(|e| CliError::Other(format!("migrations: {e}")))?;

    set_default("HSM_OTP_DATABASE_URL", &database_url);
    set_default("HSM_OTP_TOKEN_LABEL", TOKEN_LABEL);
    set_default("HSM_OTP_USER_PIN_FILE", &pin_file.display().to_string());
    set_default("HSM_OTP_TLS_CERT", &pki.server_cert.display().to_string());
    set_default("HSM_OTP_TLS_KEY", &pki.server_key.display().to_string());
    set_default("HSM_OTP_CLIENT_CA", &pki.ca.display().to_string());
    let config = Config::load(config_file)?;

    let key_file = dir.join("demo.channel-key");
    if !key_file.exists() {
        let services = crate::startup::services(&config)?;
        services
            .ensure_keys()
            .map_err(|e| CliError::Other(e.to_string()))?;
        let fingerprint = client_fingerprint(&pki.client_cert)?;
        // The demo channel may receive codes in answers, so challenges can be tried
        // locally without an SMS provider (`"delivery": "response"`).
        let options = crate::service::ChannelOptions {
            client_cert_sha256: vec![fingerprint],
            may_receive_otp: true,
            ..Default::default()
        };
        let key = match services.create_channel(DEMO_CHANNEL, &options) {
            Ok((_, key)) => key,
            Err(crate::service::Error::Conflict) => services.rotate_channel_key(DEMO_CHANNEL)?,
            Err(e) => return Err(e.into()),
        };
        pki::write(&key_file, key.channel_key.expose(), true).map_err(CliError::Other)?;
    }
    print_example(&config, &pki, &key_file);
    if args.no_serve {
        return Ok(());
    }
    crate::telemetry::init(&config.log_level, &config.log_format);
    super::serve(&config)
}

fn install_deps(postgres: bool) -> Result<(), CliError> {
    let have_softhsm = Path::new(crate::config::DEFAULT_PKCS11_MODULE).exists()
        && which("softhsm2-util")
        && which("psql");
    if have_softhsm && !postgres {
        return Ok(());
    }
    eprintln!("hsm-otp dev: installing what is missing (apt-get)…");
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(INSTALL_DEPS).arg("install-deps");
    if postgres {
        cmd.arg("--postgres");
    }
    let status = cmd
        .status()
        .map_err(|e| CliError::Other(format!("bash: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Other(
            "installing dependencies failed (see above)".into(),
        ))
    }
}

/// Creates the SoftHSM configuration and token once; returns the user PIN file.
fn softhsm_token(dir: &Path) -> Result<PathBuf, CliError> {
    let conf = dir.join("softhsm2.conf");
    let tokens = dir.join("tokens");
    let pin_file = dir.join("user.pin");
    std::env::set_var("SOFTHSM2_CONF", &conf);
    if pin_file.exists() {
        return Ok(pin_file);
    }
    std::fs::create_dir_all(&tokens).map_err(|e| other(&tokens, e))?;
    let text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
        tokens.display()
    );
    pki::write(&conf, &text, false).map_err(CliError::Other)?;
    // Development PINs only; production PINs are chosen by the security officers.
    let so_pin = uuid::Uuid::new_v4().simple().to_string();
    let user_pin = uuid::Uuid::new_v4().simple().to_string();
    let status = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN_LABEL])
        .args(["--so-pin", &so_pin, "--pin", &user_pin])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| CliError::Other(format!("softhsm2-util: {e}")))?;
    if !status.success() {
        return Err(CliError::Other("softhsm2-util --init-token failed".into()));
    }
    pki::write(&dir.join("so.pin"), &so_pin, true).map_err(CliError::Other)?;
    pki::write(&pin_file, &user_pin, true).map_err(CliError::Other)?;
    Ok(pin_file)
}

fn pki_files(dir: &Path) -> Option<pki::PkiFiles> {
    let files = pki::PkiFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    [
        &files.ca,
        &files.server_cert,
        &files.server_key,
        &files.client_cert,
        &files.client_key,
    ]
    .iter()
    .all(|p| p.exists())
    .then_some(files)
}

fn client_fingerprint(cert: &Path) -> Result<String, CliError> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert)
        .map_err(|e| CliError::Other(format!("{}: {e}", cert.display())))?;
    Ok(crate::tls::fingerprint(&der))
}

fn print_example(config: &Config, pki: &pki::PkiFiles, key_file: &Path) {
    let api = config.listen;
    let tls = format!(
        "--cacert {} --cert {} --key {}",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    println!(
        "hsm-otp dev environment ready.\n\
         \n  API      https://{api}   (mTLS: client certificate + X-Channel-Key)\
         \n  metrics  http://{}/metrics\
         \n\nEnrol a TOTP token for alice (the answer carries its otpauth:// URI, once):\n\
         \n  curl -s {tls} -H \"X-Channel-Key: $(cat {key})\" -H 'Content-Type: application/json' \\\
         \n    -d '{{\"user\":\"alice\",\"type\":\"totp\"}}' https://localhost:{port}/v1/tokens\n\
         \nVerify a code from the authenticator app:\n\
         \n  curl -s {tls} -H \"X-Channel-Key: $(cat {key})\" -H 'Content-Type: application/json' \\\
         \n    -d '{{\"otp\":\"123456\"}}' https://localhost:{port}/v1/users/alice/verify\n",
        config.metrics_listen,
        key = key_file.display(),
        port = api.port(),
    );
}

fn set_default(name: &str, value: &str) {
    if std::env::var_os(name).is_none() {
        std::env::set_var(name, value);
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn other(path: &Path, e: std::io::Error) -> CliError {
    CliError::Other(format!("{}: {e}", path.display()))
}
