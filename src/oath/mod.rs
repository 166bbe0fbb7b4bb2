//! The OATH core: HOTP (RFC 4226) and TOTP (RFC 6238) computed over an abstract [`Mac`].
//!
//! This module is pure: no HTTP, SQL, PKCS#11 or async runtime, and no clock — time is passed
//! in. The HSM implements [`Mac`] in production; [`soft::SoftMac`] is the software reference
//! used by unit tests and benchmarks.

mod hotp;
pub mod soft;
mod totp;
pub mod vectors;
pub mod window;

pub use hotp::{hotp, truncate};
pub use totp::{time_step, Period};

use crate::domain::Algorithm;

/// A keyed HMAC whose key the caller never sees: the HSM, or the software reference.
pub trait Mac {
    /// What can go wrong computing one MAC (for the HSM: the device is gone, ...).
    type Error: From<TruncationError>;

    /// The hash function this key is used with.
    fn algorithm(&self) -> Algorithm;

    /// HMAC of `message` under the bound key.
    fn mac(&mut self, message: &[u8]) -> Result<Vec<u8>, Self::Error>;
}

/// A MAC shorter than dynamic truncation needs (RFC 4226 section 5.3 needs 20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the MAC is too short for dynamic truncation")]
pub struct TruncationError;
