//! Parsed value types shared by every layer: once a value is one of these, it is valid.
//!
//! Nothing here knows about HTTP, SQL or PKCS#11. Types that hold secrets (seeds, codes,
//! channel keys, PINs) redact their `Debug` output and zeroize their memory on drop.

mod code;
mod contact;
mod otp;
mod secret;

pub use code::{code_from_random, MAX_CODE_DIGITS, MIN_CODE_DIGITS};
pub use contact::{E164Phone, Email};
pub use otp::{Algorithm, Digits, Otp, OtpParseError, TokenKind};
pub use secret::{SecretBytes, SecretString};
