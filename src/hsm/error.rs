//! PKCS#11 return values mapped onto what the service can do about them.

use cryptoki::error::{Error as CkError, RvError};

use crate::oath::TruncationError;

/// An HSM failure. Messages name the PKCS#11 function and return value, never data.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The module, token or session is gone or not usable now: answer 503, recover later.
    #[error("HSM unavailable: {0}")]
    Unavailable(String),
    /// An object the service relies on is missing (a stale handle, a destroyed seed).
    #[error("HSM object not found: {0}")]
    NotFound(String),
    /// The configuration does not fit the HSM (module path, token label, PIN).
    #[error("HSM configuration: {0}")]
    Config(String),
    /// Anything else: a bug or an unexpected answer.
    #[error("HSM error: {0}")]
    Internal(String),
}

impl From<CkError> for HsmError {
    fn from(e: CkError) -> Self {
        match &e {
            CkError::Pkcs11(rv, _) => match rv {
                RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::SessionCount
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn
                | RvError::GeneralError
                | RvError::FunctionFailed => Self::Unavailable(e.to_string()),
                RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::UnwrappingKeyHandleInvalid => Self::NotFound(e.to_string()),
                RvError::MechanismInvalid | RvError::MechanismParamInvalid => Self::Config(
                    format!("the HSM does not support a required mechanism ({e})"),
                ),
                RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinInvalid
                | RvError::PinLenRange => Self::Config(format!("the token refused the PIN ({e})")),
                _ => Self::Internal(e.to_string()),
            },
            CkError::LibraryLoading(_) => Self::Config(format!("cannot load the module: {e}")),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<TruncationError> for HsmError {
    fn from(e: TruncationError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl HsmError {
    /// Whether the device or session should be considered gone (and the pool rebuilt).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
