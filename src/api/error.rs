//! The API's one error type: a stable code, a status, and a fixed message.
//!
//! Messages come from a table per code and never echo input (promise 9). Causes of 5xx
//! answers are logged, not shown.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::service::{Error, Missing};

/// Stable error codes, as listed in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The channel's message budget is spent.
    BudgetExhausted,
    /// No such challenge in the caller's channel.
    ChallengeNotFound,
    /// The channel is disabled.
    ChannelDisabled,
    /// The name is taken.
    Conflict,
    /// The database cannot answer.
    DatabaseUnavailable,
    /// The HSM cannot answer.
    HsmUnavailable,
    /// An unexpected failure.
    InternalError,
    /// The body is not well-formed JSON.
    InvalidJson,
    /// The code is not digits of the token's length.
    InvalidOtp,
    /// A field is missing, unknown or out of range.
    InvalidRequest,
    /// An imported seed is malformed or of a bad length.
    InvalidSeed,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// No such path.
    NotFound,
    /// The channel may not receive codes in answers.
    OtpNotAllowed,
    /// The body exceeds the size limit.
    PayloadTooLarge,
    /// Too many challenges for this destination or channel.
    RateLimited,
    /// No such token in the caller's channel.
    TokenNotFound,
    /// Channel key, certificate or address refused.
    Unauthenticated,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// No such user in the caller's channel.
    UserNotFound,
}

/// Every code, for the README table and the test that pins it.
pub const ALL_CODES: [ErrorCode; 20] = [
    ErrorCode::BudgetExhausted,
    ErrorCode::ChallengeNotFound,
    ErrorCode::ChannelDisabled,
    ErrorCode::Conflict,
    ErrorCode::DatabaseUnavailable,
    ErrorCode::HsmUnavailable,
    ErrorCode::InternalError,
    ErrorCode::InvalidJson,
    ErrorCode::InvalidOtp,
    ErrorCode::InvalidRequest,
    ErrorCode::InvalidSeed,
    ErrorCode::MethodNotAllowed,
    ErrorCode::NotFound,
    ErrorCode::OtpNotAllowed,
    ErrorCode::PayloadTooLarge,
    ErrorCode::RateLimited,
    ErrorCode::TokenNotFound,
    ErrorCode::Unauthenticated,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::UserNotFound,
];

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BudgetExhausted | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ChallengeNotFound => StatusCode::NOT_FOUND,
            Self::ChannelDisabled | Self::OtpNotAllowed => StatusCode::FORBIDDEN,
            Self::Conflict => StatusCode::CONFLICT,
            Self::DatabaseUnavailable | Self::HsmUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidJson | Self::InvalidOtp | Self::InvalidRequest | Self::InvalidSeed => {
                StatusCode::BAD_REQUEST
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound | Self::TokenNotFound | Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BudgetExhausted => "budget_exhausted",
            Self::ChallengeNotFound => "challenge_not_found",
            Self::ChannelDisabled => "channel_disabled",
            Self::Conflict => "conflict",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::HsmUnavailable => "hsm_unavailable",
            Self::InternalError => "internal_error",
            Self::InvalidJson => "invalid_json",
            Self::InvalidOtp => "invalid_otp",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidSeed => "invalid_seed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::OtpNotAllowed => "otp_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::TokenNotFound => "token_not_found",
            Self::Unauthenticated => "unauthenticated",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UserNotFound => "user_not_found",
        }
    }

    /// The fixed message shown with this code.
    pub fn message(self) -> &'static str {
        match self {
            Self::BudgetExhausted => "this channel's message budget is spent",
            Self::ChallengeNotFound => "no such challenge",
            Self::ChannelDisabled => "this channel is disabled",
            Self::Conflict => "a resource with this name already exists",
            Self::DatabaseUnavailable => "the database is unavailable; nothing was accepted",
            Self::HsmUnavailable => "the HSM is unavailable; nothing was accepted",
            Self::InternalError => "internal error; see the server log for the request id",
            Self::InvalidJson => "the body is not well-formed JSON",
            Self::InvalidOtp => "the code must be digits, as many as the token has",
            Self::InvalidRequest => "a field is missing, unknown or out of range",
            Self::InvalidSeed => "the seed is malformed or not 16 to 128 bytes long",
            Self::MethodNotAllowed => "method not allowed on this path",
            Self::NotFound => "no such path",
            Self::OtpNotAllowed => "this channel may not receive codes in answers",
            Self::PayloadTooLarge => "the body is too large",
            Self::RateLimited => "too many challenges for this destination or channel; retry later",
            Self::TokenNotFound => "no such token",
            Self::Unauthenticated => "a valid client certificate and channel key are required",
            Self::UnsupportedMediaType => "the body must be application/json",
            Self::UserNotFound => "no such user",
        }
    }
}

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    field: Option<&'static str>,
}

impl ApiError {
    /// An error with this code.
    pub fn new(code: ErrorCode) -> Self {
        Self { code, field: None }
    }
}

impl ApiError {
    /// The native error answer, for surfaces that answer failures of the service itself
    /// (503 when the HSM or the database cannot answer) the native way.
    pub fn error_response_for_surface(&self) -> HttpResponse {
        ResponseError::error_response(self)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code.as_str())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'static str,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(Body {
            error: Detail {
                code: self.code.as_str(),
                message: self.code.message(),
                field: self.field,
            },
        })
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::BudgetSpent => ErrorCode::BudgetExhausted,
            Error::ChannelDisabled => ErrorCode::ChannelDisabled,
            Error::Conflict => ErrorCode::Conflict,
            Error::DatabaseUnavailable(_) => ErrorCode::DatabaseUnavailable,
            Error::HsmUnavailable(_) => ErrorCode::HsmUnavailable,
            Error::Internal(_) => ErrorCode::InternalError,
            Error::InvalidOtp => ErrorCode::InvalidOtp,
            Error::InvalidRequest(field) => {
                return Self {
                    code: ErrorCode::InvalidRequest,
                    field: Some(field),
                }
            }
            Error::InvalidSeed => ErrorCode::InvalidSeed,
            Error::NotFound(Missing::Token) => ErrorCode::TokenNotFound,
            Error::NotFound(Missing::User) => ErrorCode::UserNotFound,
            Error::NotFound(Missing::Channel) => ErrorCode::NotFound,
            Error::NotFound(Missing::Challenge) => ErrorCode::ChallengeNotFound,
            Error::OtpNotAllowed => ErrorCode::OtpNotAllowed,
            Error::RateLimited => ErrorCode::RateLimited,
            Error::Unauthenticated => ErrorCode::Unauthenticated,
        };
        if code.status().is_server_error() {
            tracing::error!(error = %e, code = code.as_str(), "request failed");
        }
        Self::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_stable_name_status_and_message() {
        let names: Vec<&str> = ALL_CODES.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "budget_exhausted",
                "challenge_not_found",
                "channel_disabled",
                "conflict",
                "database_unavailable",
                "hsm_unavailable",
                "internal_error",
                "invalid_json",
                "invalid_otp",
                "invalid_request",
                "invalid_seed",
                "method_not_allowed",
                "not_found",
                "otp_not_allowed",
                "payload_too_large",
                "rate_limited",
                "token_not_found",
                "unauthenticated",
                "unsupported_media_type",
                "user_not_found",
            ]
        );
        for code in ALL_CODES {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "serde name of {code:?}");
            assert!(!code.message().is_empty());
        }
        assert_eq!(
            ErrorCode::HsmUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ErrorCode::Unauthenticated.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ErrorCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
