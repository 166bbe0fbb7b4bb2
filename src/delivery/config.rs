//! Gateway and routing configuration (`[gateways.NAME]` and `[delivery]` in the TOML file).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::SecretString;

/// One gateway.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum GatewayConfig {
    /// An HTTP(S) SMS or voice provider.
    Http {
        /// Endpoint; `{to}` and `{message}` are replaced (percent-encoded) if present.
        url: SecretString,
        /// HTTP method (POST by default).
        #[serde(default = "default_method")]
        method: String,
        /// Content type of the body.
        #[serde(default = "default_content_type")]
        content_type: String,
        /// Body template with `{to}` and `{message}`, escaped for the content type.
        body: Option<String>,
        /// Extra headers (values may be credentials: never logged).
        #[serde(default)]
        headers: BTreeMap<String, SecretString>,
        /// Whole-request timeout (10 s by default).
        timeout_seconds: Option<u64>,
    },
    /// An SMTP relay.
    Smtp {
        /// Relay host.
        host: String,
        /// Port (587 for STARTTLS, 465 for TLS, 25 otherwise, by default).
        port: Option<u16>,
        /// `none`, `starttls` or `tls`.
        #[serde(default)]
        security: SmtpSecurity,
        /// The From header, e.g. `Acme Bank <otp@example.com>`.
        from: String,
        /// Login, if the relay wants one.
        username: Option<String>,
        /// Password for `username`.
        password: Option<SecretString>,
        /// Connection and command timeout (10 s by default).
        timeout_seconds: Option<u64>,
    },
}

/// SMTP transport security.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or network only).
    None,
    /// STARTTLS, required.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// Which gateways carry each kind of message, in fail-over order.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// SMS gateways.
    #[serde(default)]
    pub sms: Vec<String>,
    /// E-mail gateways.
    #[serde(default)]
    pub email: Vec<String>,
    /// Voice gateways.
    #[serde(default)]
    pub voice: Vec<String>,
    /// First retry delay in milliseconds; doubles per attempt up to 60 s (1000 by default).
    pub backoff_ms: Option<u64>,
    /// How often the worker looks for due messages, in milliseconds (250 by default).
    pub poll_ms: Option<u64>,
}

/// The validated delivery configuration.
#[derive(Clone, Debug, Default)]
pub struct DeliveryConfig {
    /// Gateways by name.
    pub gateways: BTreeMap<String, GatewayConfig>,
    /// Routing.
    pub routes: Routes,
}

impl DeliveryConfig {
    /// Checks that every routed gateway exists and fits the kind of message.
    pub fn validate(&self) -> Result<(), String> {
        for (kind, names, wants_smtp) in [
            ("sms", &self.routes.sms, false),
            ("voice", &self.routes.voice, false),
            ("email", &self.routes.email, true),
        ] {
            for name in names {
                match self.gateways.get(name) {
                    None => return Err(format!("delivery.{kind} names unknown gateway {name:?}")),
                    Some(GatewayConfig::Smtp { .. }) if !wants_smtp => {
                        return Err(format!("delivery.{kind}: gateway {name:?} is SMTP"))
                    }
                    Some(GatewayConfig::Http { .. }) if wants_smtp => {
                        return Err(format!("delivery.{kind}: gateway {name:?} is not SMTP"))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The gateway names for a kind of message.
    pub fn route(&self, kind: &str) -> &[String] {
        match kind {
            "sms" => &self.routes.sms,
            "email" => &self.routes.email,
            "voice" => &self.routes.voice,
            _ => &[],
        }
    }
}

fn default_method() -> String {
    "POST".into()
}

fn default_content_type() -> String {
    "application/json".into()
}
