//! The gateways: an HTTP(S) provider for SMS and voice, and SMTP for e-mail.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::config::{GatewayConfig, SmtpSecurity};
use crate::domain::SecretString;

/// Why a send failed. Reasons never contain the message text or credentials.
#[derive(Debug)]
pub enum SendError {
    /// Worth retrying (connection errors, timeouts, 5xx, 429, SMTP 4xx).
    Transient(String),
    /// Not worth retrying through this gateway (other 4xx, SMTP 5xx, bad address).
    Permanent(String),
}

/// A configured gateway.
pub enum Gateway {
    /// HTTP(S) provider.
    Http(HttpGateway),
    /// SMTP relay.
    Smtp(SmtpGateway),
}

/// An HTTP(S) SMS or voice provider.
pub struct HttpGateway {
    name: String,
    client: reqwest::Client,
    url: SecretString,
    method: reqwest::Method,
    content_type: String,
    body: Option<String>,
    headers: Vec<(String, SecretString)>,
}

/// An SMTP relay.
pub struct SmtpGateway {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Gateway {
    /// Builds the gateway `name` from its configuration.
    pub fn build(name: &str, config: &GatewayConfig) -> Result<Self, String> {
        let timeout = |t: &Option<u64>| Duration::from_secs(t.unwrap_or(10).clamp(1, 120));
        match config {
            GatewayConfig::Http {
                url,
                method,
                content_type,
                body,
                headers,
                timeout_seconds,
            } => {
                let client = reqwest::Client::builder()
                    .use_rustls_tls()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(timeout(timeout_seconds))
                    .build()
                    .map_err(|e| format!("gateway {name}: {e}"))?;
                Ok(Self::Http(HttpGateway {
                    name: name.to_owned(),
                    client,
                    url: url.clone(),
                    method: method
                        .to_uppercase()
                        .parse()
                        .map_err(|_| format!("gateway {name}: bad method"))?,
                    content_type: content_type.clone(),
                    body: body.clone(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }))
            }
            GatewayConfig::Smtp {
                host,
                port,
                security,
                from,
                username,
                password,
                timeout_seconds,
            } => {
                let bad = |e: lettre::transport::smtp::Error| format!("gateway {name}: {e}");
                let builder = match security {
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                            .port(port.unwrap_or(25))
                    }
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                            .map_err(bad)?
                            .port(port.unwrap_or(587))
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                        .map_err(bad)?
                        .port(port.unwrap_or(465)),
                };
                let mut builder = builder.timeout(Some(timeout(timeout_seconds)));
                if let (Some(user), Some(password)) = (username, password) {
                    builder = builder
                        .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Ok(Self::Smtp(SmtpGateway {
                    name: name.to_owned(),
                    transport: builder.build(),
                    from: from
                        .parse()
                        .map_err(|_| format!("gateway {name}: bad from address"))?,
                }))
            }
        }
    }

    /// The gateway's configured name.
    pub fn name(&self) -> &str {
        match self {
            Self::Http(g) => &g.name,
            Self::Smtp(g) => &g.name,
        }
    }

    /// Sends `text` to `to`.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &SecretString,
    ) -> Result<(), SendError> {
        match self {
            Self::Http(g) => g.send(to, text).await,
            Self::Smtp(g) => g.send(to, subject, text).await,
        }
    }
}

impl HttpGateway {
    async fn send(&self, to: &str, text: &SecretString) -> Result<(), SendError> {
        let url = zeroize::Zeroizing::new(
            self.url
                .expose()
                .replace("{to}", &pct(to))
                .replace("{message}", &pct(text.expose())),
        );
        let mut request = self.client.request(self.method.clone(), url.as_str());
        if let Some(template) = &self.body {
            let escape = |s: &str| escape_for(&self.content_type, s);
            let body = template
                .replace("{to}", &escape(to))
                .replace("{message}", &escape(text.expose()));
            request = request
                .header(reqwest::header::CONTENT_TYPE, &self.content_type)
                .body(body);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Transient(describe(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(SendError::Transient(format!("HTTP {}", status.as_u16())))
        } else {
            Err(SendError::Permanent(format!("HTTP {}", status.as_u16())))
        }
    }
}

impl SmtpGateway {
    async fn send(&self, to: &str, subject: &str, text: &SecretString) -> Result<(), SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| SendError::Permanent("bad recipient address".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.expose().to_owned())
            .map_err(|_| SendError::Permanent("message could not be built".into()))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(smtp_reason(&e))),
            Err(e) => Err(SendError::Transient(smtp_reason(&e))),
        }
    }
}

fn smtp_reason(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("SMTP {code}"),
        None if e.is_timeout() => "SMTP timeout".into(),
        None => "SMTP connection failed".into(),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

fn pct(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Escapes a value for a body of `content_type`: JSON string contents, form encoding, or as is.
fn escape_for(content_type: &str, s: &str) -> String {
    if content_type.contains("json") {
        let quoted = serde_json::Value::String(s.to_owned()).to_string();
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
            .to_owned()
    } else if content_type.contains("x-www-form-urlencoded") {
        pct(s)
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::escape_for;

    #[test]
    fn values_are_escaped_for_the_body_s_content_type() {
        let s = "Código \"123\"\n& more";
        assert_eq!(
            escape_for("application/json", s),
            "Código \\\"123\\\"\\n& more"
        );
        assert_eq!(
            escape_for("application/x-www-form-urlencoded", "a b&c"),
            "a%20b%26c"
        );
        assert_eq!(escape_for("text/plain", s), s);
    }
}
