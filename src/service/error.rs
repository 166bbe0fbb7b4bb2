//! What a use case can answer instead of a result.

use crate::hsm::HsmError;
use crate::store::StoreError;

/// Which kind of thing was not found (in the caller's channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No such channel.
    Channel,
    /// No such token in the caller's channel.
    Token,
    /// No such user (with tokens, challenges or a directory entry) in the caller's channel.
    User,
    /// No such challenge in the caller's channel.
    Challenge,
}

/// A use case's failure. Messages never carry secrets or echo input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The channel is disabled.
    #[error("the channel is disabled")]
    ChannelDisabled,
    /// The channel's message budget is spent.
    #[error("message budget spent")]
    BudgetSpent,
    /// A unique name is taken.
    #[error("already exists")]
    Conflict,
    /// The database cannot answer: nothing is accepted (promise 8).
    #[error(transparent)]
    DatabaseUnavailable(StoreError),
    /// The HSM cannot answer: nothing is accepted (promise 8).
    #[error(transparent)]
    HsmUnavailable(HsmError),
    /// An unexpected failure; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
    /// The code is not digits, or not the token's length.
    #[error("invalid one-time code")]
    InvalidOtp,
    /// A request value is out of range; the text names the field, never its value.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// An imported seed is malformed or of an unacceptable length.
    #[error("invalid seed")]
    InvalidSeed,
    /// Not found in the caller's channel.
    #[error("not found")]
    NotFound(Missing),
    /// The channel may not receive codes in answers.
    #[error("this channel may not receive codes")]
    OtpNotAllowed,
    /// Too many challenges for the destination or the channel.
    #[error("rate limited")]
    RateLimited,
    /// The caller's channel key, certificate or address does not authenticate it.
    #[error("unauthenticated")]
    Unauthenticated,
}

impl From<HsmError> for Error {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Unavailable(_) | HsmError::Config(_) => Self::HsmUnavailable(e),
            HsmError::NotFound(_) | HsmError::Internal(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::DatabaseUnavailable(e),
            StoreError::Conflict => Self::Conflict,
            StoreError::Internal(_) => Self::Internal(e.to_string()),
        }
    }
}
