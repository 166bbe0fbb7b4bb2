//! Request and response bodies of the native API. Unknown fields are refused.

use serde::{Deserialize, Serialize};

use crate::domain::{Algorithm, SecretString, TokenKind};
use crate::service::Token;

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolRequest {
    pub(super) user: String,
    #[serde(rename = "type")]
    pub(super) kind: TokenKind,
    pub(super) algorithm: Option<Algorithm>,
    pub(super) digits: Option<u8>,
    pub(super) period: Option<u32>,
    pub(super) counter: Option<u64>,
    pub(super) seed_hex: Option<SecretString>,
    pub(super) seed_base32: Option<SecretString>,
    pub(super) issuer: Option<String>,
}

/// `POST .../verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    pub(super) otp: SecretString,
}

/// `POST /v1/tokens/{id}/resync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResyncRequest {
    pub(super) otp1: SecretString,
    pub(super) otp2: SecretString,
}

/// A verification's answer.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyResponse {
    result: &'static str,
}

impl From<crate::service::Verdict> for VerifyResponse {
    fn from(verdict: crate::service::Verdict) -> Self {
        Self {
            result: verdict.as_str(),
        }
    }
}

/// A token as shown to its channel: never a seed.
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    id: uuid::Uuid,
    user: String,
    #[serde(rename = "type")]
    kind: TokenKind,
    algorithm: Algorithm,
    digits: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    seed_storage: &'static str,
    locked: bool,
    failure_count: u32,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Only in the answer to an enrolment whose seed the HSM generated.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    otpauth_uri: Option<SecretString>,
}

fn expose_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

impl TokenResponse {
    pub(super) fn new(t: Token, otpauth_uri: Option<SecretString>) -> Self {
        let hotp = t.kind == TokenKind::Hotp;
        Self {
            id: t.id,
            user: t.user,
            kind: t.kind,
            algorithm: t.algorithm,
            digits: t.digits.get(),
            period: (!hotp).then(|| t.period.seconds()),
            counter: hotp.then_some(t.next_factor),
            issuer: t.issuer,
            seed_storage: t.storage.as_str(),
            locked: t.locked,
            failure_count: t.failure_count,
            created_at: t.created_at,
            otpauth_uri,
        }
    }
}
