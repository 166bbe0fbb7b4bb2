//! One configuration: a TOML file (`--config`) and `HSM_OTP_*` environment variables, the
//! environment winning. Every key of the file has the variable `HSM_OTP_<KEY>` (upper case);
//! `DATABASE_URL` is read when `HSM_OTP_DATABASE_URL` is not set. Unknown keys and unknown
//! `HSM_OTP_*` variables are errors, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::delivery::{DeliveryConfig, GatewayConfig, Routes};
use crate::domain::SecretString;
use crate::hsm::{HsmSettings, SeedStorage};
use crate::service::{ChallengePolicy, Policy};

/// Default PKCS#11 module: Debian's SoftHSM.
pub const DEFAULT_PKCS11_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Environment variables that are not configuration keys.
const NOT_KEYS: [&str; 1] = ["HSM_OTP_CONFIG"];

/// A configuration problem, naming the key concerned (never its value).
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this message (which must name keys, never values).
    pub fn from_message(message: String) -> Self {
        Self(message)
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// PostgreSQL URL.
    pub database_url: SecretString,
    /// How to reach the HSM.
    pub hsm: HsmSettings,
    /// API listener.
    pub listen: SocketAddr,
    /// Metrics listener.
    pub metrics_listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA that client certificates must chain to (PEM).
    pub client_ca: Option<PathBuf>,
    /// Verification policy and seed storage mode.
    pub policy: Policy,
    /// Challenge lifetimes, failure limit and rate limits.
    pub challenges: ChallengePolicy,
    /// Gateways and routing of outgoing messages.
    pub delivery: DeliveryConfig,
    /// Database connections per process.
    pub db_pool_size: u32,
    /// Read and settle concurrent verifications in groups (on by default).
    pub group_commit: bool,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// Log filter (`tracing` env-filter syntax).
    pub log_level: String,
    /// `json` or `text`.
    pub log_format: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database_url: Option<String>,
    pkcs11_module: Option<PathBuf>,
    token_label: Option<String>,
    user_pin: Option<String>,
    user_pin_file: Option<PathBuf>,
    listen: Option<String>,
    metrics_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    seed_storage: Option<String>,
    #[serde(default, deserialize_with = "number")]
    hotp_window: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    totp_window: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    hotp_resync_window: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    totp_resync_window: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    max_failures: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    db_pool_size: Option<u64>,
    #[serde(default, deserialize_with = "flag")]
    group_commit: Option<bool>,
    #[serde(default, deserialize_with = "number")]
    hsm_sessions: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    hot_seeds: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    hsm_recycle_after: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    max_body_bytes: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    workers: Option<u64>,
    log_level: Option<String>,
    log_format: Option<String>,
    challenges: Option<RawChallenges>,
    gateways: Option<std::collections::BTreeMap<String, GatewayConfig>>,
    delivery: Option<Routes>,
}

/// `[challenges]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChallenges {
    default_ttl_seconds: Option<u64>,
    max_ttl_seconds: Option<u64>,
    max_failures: Option<u64>,
    per_destination_limit: Option<u64>,
    per_destination_window_seconds: Option<u64>,
    per_channel_limit: Option<u64>,
    per_channel_window_seconds: Option<u64>,
    keyed_max_failures: Option<u64>,
    keyed_freeze_seconds: Option<u64>,
}

impl RawChallenges {
    fn validate(self) -> Result<ChallengePolicy, ConfigError> {
        let d = ChallengePolicy::default();
        let max_ttl = bounded(
            "challenges.max_ttl_seconds",
            self.max_ttl_seconds,
            1..=86_400,
            d.max_ttl_seconds,
        )?;
        Ok(ChallengePolicy {
            default_ttl_seconds: bounded(
                "challenges.default_ttl_seconds",
                self.default_ttl_seconds,
                1..=u64::from(max_ttl),
                d.default_ttl_seconds,
            )?,
            max_ttl_seconds: max_ttl,
            max_failures: bounded(
                "challenges.max_failures",
                self.max_failures,
                1..=1000,
                d.max_failures,
            )?,
            per_destination_limit: bounded(
                "challenges.per_destination_limit",
                self.per_destination_limit,
                1..=1_000_000,
                d.per_destination_limit,
            )?,
            per_destination_window_seconds: bounded(
                "challenges.per_destination_window_seconds",
                self.per_destination_window_seconds,
                1..=86_400,
                d.per_destination_window_seconds,
            )?,
            per_channel_limit: bounded(
                "challenges.per_channel_limit",
                self.per_channel_limit,
                1..=100_000_000,
                d.per_channel_limit,
            )?,
            per_channel_window_seconds: bounded(
                "challenges.per_channel_window_seconds",
                self.per_channel_window_seconds,
                1..=86_400,
                d.per_channel_window_seconds,
            )?,
            keyed_max_failures: bounded(
                "challenges.keyed_max_failures",
                self.keyed_max_failures,
                1..=1000,
                d.keyed_max_failures,
            )?,
            keyed_freeze_seconds: bounded(
                "challenges.keyed_freeze_seconds",
                self.keyed_freeze_seconds,
                0..=604_800,
                d.keyed_freeze_seconds,
            )?,
        })
    }
}

/// Merges the file and the environment (the environment wins) into the raw settings.
fn read(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Raw, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?
        }
        None => toml::Table::new(),
    };
    let mut fallback_db = None;
    for (name, value) in env {
        if name == "DATABASE_URL" {
            fallback_db = Some(value);
        } else if let Some(key) = name.strip_prefix("HSM_OTP_") {
            if !NOT_KEYS.contains(&name.as_str()) {
                table.insert(key.to_lowercase(), toml::Value::String(value));
            }
        }
    }
    if let Some(url) = fallback_db {
        table
            .entry("database_url")
            .or_insert(toml::Value::String(url));
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError(e.message().to_owned()))
}

/// Switches may come from TOML as booleans or from the environment as `true` / `false`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum F {
        Bool(bool),
        Text(String),
    }
    match Option::<F>::deserialize(d)? {
        None => Ok(None),
        Some(F::Bool(b)) => Ok(Some(b)),
        Some(F::Text(s)) => match s.trim() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom("expected true or false")),
        },
    }
}

/// Numbers may come from TOML as integers or from the environment as strings.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Int(n)) => Ok(Some(n)),
        Some(N::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

impl Config {
    /// Reads `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, std::env::vars())
    }

    /// Reads `file` (if any) and the given environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        read(file, env)?.validate()
    }

    /// Only the database URL: all `hsm-otp migrate` needs (the HSM settings may be absent).
    pub fn database_url(file: Option<&Path>) -> Result<SecretString, ConfigError> {
        read(file, std::env::vars())?
            .database_url
            .map(SecretString::new)
            .ok_or_else(|| ConfigError("database_url is required (HSM_OTP_DATABASE_URL)".into()))
    }

    /// Checks that the TLS files are configured (needed to serve, not for the CLI).
    pub fn tls_files(&self) -> Result<(&Path, &Path, &Path), ConfigError> {
        match (&self.tls_cert, &self.tls_key, &self.client_ca) {
            (Some(c), Some(k), Some(ca)) => Ok((c, k, ca)),
            _ => Err(ConfigError(
                "tls_cert, tls_key and client_ca (HSM_OTP_TLS_CERT, HSM_OTP_TLS_KEY, \
                 HSM_OTP_CLIENT_CA) are required to serve"
                    .into(),
            )),
        }
    }
}

impl Raw {
    fn validate(self) -> Result<Config, ConfigError> {
        let missing = |key: &str| {
            ConfigError(format!(
                "{key} is required (HSM_OTP_{})",
                key.to_uppercase()
            ))
        };
        let database_url = self.database_url.ok_or_else(|| missing("database_url"))?;
        let user_pin = match (self.user_pin, self.user_pin_file) {
            (Some(pin), None) => pin,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| ConfigError(format!("user_pin_file {}: {e}", path.display())))?,
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "set user_pin or user_pin_file, not both".into(),
                ))
            }
            (None, None) => return Err(missing("user_pin")),
        };
        let seed_storage = match self.seed_storage.as_deref() {
            None => SeedStorage::Wrapped,
            Some(s) => SeedStorage::parse(s).ok_or_else(|| {
                ConfigError("seed_storage must be \"wrapped\" or \"object\"".into())
            })?,
        };
        let defaults = Policy::default();
        let policy = Policy {
            hotp_window: bounded(
                "hotp_window",
                self.hotp_window,
                0..=1000,
                defaults.hotp_window,
            )?,
            totp_window: bounded(
                "totp_window",
                self.totp_window,
                0..=10,
                defaults.totp_window,
            )?,
            hotp_resync_window: bounded(
                "hotp_resync_window",
                self.hotp_resync_window,
                1..=10_000,
                defaults.hotp_resync_window,
            )?,
            totp_resync_window: bounded(
                "totp_resync_window",
                self.totp_resync_window,
                1..=1000,
                defaults.totp_resync_window,
            )?,
            max_failures: bounded(
                "max_failures",
                self.max_failures,
                1..=1000,
                defaults.max_failures,
            )?,
            seed_storage,
        };
        let challenges = self.challenges.unwrap_or_default().validate()?;
        let delivery = DeliveryConfig {
            gateways: self.gateways.unwrap_or_default(),
            routes: self.delivery.unwrap_or_default(),
        };
        delivery.validate().map_err(ConfigError)?;
        let log_format = self.log_format.unwrap_or_else(|| "json".into());
        if !["json", "text"].contains(&log_format.as_str()) {
            return Err(ConfigError(
                "log_format must be \"json\" or \"text\"".into(),
            ));
        }
        Ok(Config {
            database_url: SecretString::new(database_url),
            hsm: HsmSettings {
                module: self
                    .pkcs11_module
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_PKCS11_MODULE)),
                token_label: self.token_label.ok_or_else(|| missing("token_label"))?,
                user_pin: SecretString::new(user_pin),
                max_sessions: bounded("hsm_sessions", self.hsm_sessions, 1..=1024, 16)?,
                hot_seeds: bounded(
                    "hot_seeds",
                    self.hot_seeds,
                    0..=1_000_000,
                    default_hot_seeds(policy.seed_storage),
                )?,
                recycle_after: bounded(
                    "hsm_recycle_after",
                    self.hsm_recycle_after,
                    0..=1_000_000_000,
                    default_recycle_after(policy.seed_storage),
                )?,
            },
            listen: address("listen", self.listen, "127.0.0.1:8443")?,
            metrics_listen: address("metrics_listen", self.metrics_listen, "127.0.0.1:9464")?,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            client_ca: self.client_ca,
            policy,
            challenges,
            delivery,
            db_pool_size: bounded("db_pool_size", self.db_pool_size, 1..=1000, 16)?,
            group_commit: self.group_commit.unwrap_or(true),
            max_body_bytes: bounded(
                "max_body_bytes",
                self.max_body_bytes,
                256..=1 << 20,
                16 * 1024,
            )?,
            workers: bounded("workers", self.workers, 0..=256, 0)?,
            log_level: self.log_level.unwrap_or_else(|| "info".into()),
            log_format,
        })
    }
}

/// `hot_seeds` unless set. Wrapped storage keeps the 1,024 most recently used seeds
/// unwrapped. Object storage keeps a copy of every seed object used (up to the bound): a copy
/// made again after an eviction is memory SoftHSM keeps until the module is finalised, which
/// object storage does not do (see below); its fleets are of thousands, and SoftHSM holds
/// every seed object in memory anyway (10,000 copies: about 60 MB).
fn default_hot_seeds(storage: SeedStorage) -> usize {
    match storage {
        SeedStorage::Wrapped => 1_024,
        SeedStorage::Object => 1_000_000,
    }
}

/// `hsm_recycle_after` unless set: wrapped storage keeps a handful of objects on the token,
/// so a recycle costs a few milliseconds and frees what SoftHSM kept of the seeds unwrapped
/// meanwhile. Object storage does not recycle: SoftHSM loads every seed object again at
/// each recycle, and the memory of the ones it held did not come back (10,000 seed objects, a
/// recycle every 20,000 copies, two 30-second phases: 309 MB against 143 MB without; run L in
/// docs/performance.md).
fn default_recycle_after(storage: SeedStorage) -> u64 {
    match storage {
        SeedStorage::Wrapped => 100_000,
        SeedStorage::Object => 0,
    }
}

fn bounded<T: TryFrom<u64>>(
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if range.contains(&v) => {
            T::try_from(v).map_err(|_| ConfigError(format!("{key} is out of range")))
        }
        Some(_) => Err(ConfigError(format!(
            "{key} must be between {} and {}",
            range.start(),
            range.end()
        ))),
    }
}

fn address(key: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    value
        .as_deref()
        .unwrap_or(default)
        .parse()
        .map_err(|_| ConfigError(format!("{key} must be an address such as {default}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> Vec<(String, String)> {
        env(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("HSM_OTP_TOKEN_LABEL", "t"),
            ("HSM_OTP_USER_PIN", "1234"),
        ])
    }

    #[test]
    fn defaults_apply_when_only_the_required_keys_are_set() {
        let c = Config::from_sources(None, minimal()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.hsm.module, PathBuf::from(DEFAULT_PKCS11_MODULE));
        assert_eq!(c.policy.seed_storage, SeedStorage::Wrapped);
        assert_eq!(c.policy.hotp_window, 10);
        assert_eq!(c.policy.max_failures, 5);
        assert!(c.group_commit);
        assert_eq!(c.hsm.hot_seeds, 1_024);
        assert_eq!(c.hsm.recycle_after, 100_000);
    }

    #[test]
    fn hsm_recycling_can_be_tuned_and_switched_off() {
        let with = |v: &str| {
            let mut e = minimal();
            e.push(("HSM_OTP_HSM_RECYCLE_AFTER".into(), v.into()));
            Config::from_sources(None, e)
        };
        assert_eq!(with("0").unwrap().hsm.recycle_after, 0);
        let mut object = minimal();
        object.push(("HSM_OTP_SEED_STORAGE".into(), "object".into()));
        let object = Config::from_sources(None, object).unwrap();
        assert_eq!(
            object.hsm.recycle_after, 0,
            "object storage does not recycle"
        );
        assert_eq!(
            object.hsm.hot_seeds, 1_000_000,
            "object storage copies each seed object once"
        );
        assert_eq!(with("5000").unwrap().hsm.recycle_after, 5_000);
        let err = with("1000000001").unwrap_err().to_string();
        assert!(err.contains("hsm_recycle_after"), "{err}");
    }

    #[test]
    fn hot_seeds_are_bounded_and_can_be_switched_off() {
        let with = |v: &str| {
            let mut e = minimal();
            e.push(("HSM_OTP_HOT_SEEDS".into(), v.into()));
            Config::from_sources(None, e)
        };
        assert_eq!(with("0").unwrap().hsm.hot_seeds, 0);
        assert_eq!(with("50000").unwrap().hsm.hot_seeds, 50_000);
        let err = with("1000001").unwrap_err().to_string();
        assert!(err.contains("hot_seeds"), "{err}");
    }

    #[test]
    fn group_commit_is_switched_off_from_the_file_or_the_environment() {
        let mut e = minimal();
        e.push(("HSM_OTP_GROUP_COMMIT".into(), "false".into()));
        assert!(!Config::from_sources(None, e).unwrap().group_commit);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "group_commit = false\n").unwrap();
        assert!(
            !Config::from_sources(Some(&file), minimal())
                .unwrap()
                .group_commit
        );
        let mut e = minimal();
        e.push(("HSM_OTP_GROUP_COMMIT".into(), "maybe".into()));
        assert!(Config::from_sources(None, e).is_err());
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "max_failures = 3\nseed_storage = \"object\"\nlisten = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let mut e = minimal();
        e.extend(env(&[
            ("HSM_OTP_MAX_FAILURES", "7"),
            ("HSM_OTP_DATABASE_URL", "postgres://a/b"),
        ]));
        let c = Config::from_sources(Some(&file), e).unwrap();
        assert_eq!(c.policy.max_failures, 7);
        assert_eq!(c.policy.seed_storage, SeedStorage::Object);
        assert_eq!(c.listen.to_string(), "0.0.0.0:1");
        assert_eq!(c.database_url.expose(), "postgres://a/b");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_never_show_the_value() {
        let mut e = minimal();
        e.push(("HSM_OTP_MAX_FAILURE".into(), "5".into()));
        assert!(Config::from_sources(None, e).is_err());
        let mut e = minimal();
        e.push(("HSM_OTP_SEED_STORAGE".into(), "plaintext-secret".into()));
        let err = Config::from_sources(None, e).unwrap_err().to_string();
        assert!(!err.contains("plaintext-secret"), "{err}");
        let mut e = minimal();
        e.push(("HSM_OTP_USER_PIN_FILE".into(), "/nonexistent".into()));
        assert!(Config::from_sources(None, e).is_err());
    }

    #[test]
    fn the_pin_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "98765\n").unwrap();
        let mut e = env(&[
            ("DATABASE_URL", "postgres://db/x"),
            ("HSM_OTP_TOKEN_LABEL", "t"),
        ]);
        e.push(("HSM_OTP_USER_PIN_FILE".into(), pin.display().to_string()));
        let c = Config::from_sources(None, e).unwrap();
        assert_eq!(c.hsm.user_pin.expose(), "98765");
        assert!(!format!("{c:?}").contains("98765"));
    }

    #[test]
    fn gateways_and_routes_are_read_checked_and_never_show_their_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let gateways =
            "[gateways.sms]\nkind = \"http\"\nurl = \"https://p.example/send?key=url-secret\"\n\
                        headers = { Authorization = \"Bearer header-secret\" }\n\
                        [gateways.mail]\nkind = \"smtp\"\nhost = \"smtp.example\"\n\
                        from = \"Bank <otp@bank.example>\"\npassword = \"smtp-secret\"\n";
        let write = |routes: &str| {
            std::fs::write(&file, format!("{gateways}[delivery]\n{routes}\n")).unwrap();
            Config::from_sources(Some(&file), minimal())
        };
        let c = write("sms = [\"sms\"]\nemail = [\"mail\"]").unwrap();
        assert_eq!(c.delivery.route("sms"), ["sms"]);
        assert_eq!(c.challenges.max_failures, 5);
        let shown = format!("{c:?}");
        for secret in ["url-secret", "header-secret", "smtp-secret"] {
            assert!(!shown.contains(secret), "{secret} in Debug output");
        }
        assert!(write("sms = [\"nope\"]").is_err(), "unknown gateway");
        assert!(write("sms = [\"mail\"]").is_err(), "SMTP cannot carry SMS");
        assert!(
            write("email = [\"sms\"]").is_err(),
            "HTTP cannot carry e-mail"
        );
    }
}
