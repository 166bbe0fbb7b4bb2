//! Token parameters and one-time codes as typed values.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Whether a token counts events (HOTP, RFC 4226) or time steps (TOTP, RFC 6238).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Event based: the moving factor is a counter.
    Hotp,
    /// Time based: the moving factor is the time step.
    Totp,
}

impl TokenKind {
    /// The stable lower-case name used in the database, the API and `otpauth://` URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hotp => "hotp",
            Self::Totp => "totp",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hotp" => Some(Self::Hotp),
            "totp" => Some(Self::Totp),
            _ => None,
        }
    }
}

/// The HMAC hash function of a token (RFC 6238 section 1.2 allows SHA-1, SHA-256, SHA-512).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA-1, the RFC 4226 default.
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The stable upper-case name (`SHA1`, `SHA256`, `SHA512`), as in `otpauth://` URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Output length of the hash in bytes; also the seed length we generate.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// HMAC block size in bytes (RFC 2104 `B`): keys shorter than this are zero-padded to it.
    pub fn block_len(self) -> usize {
        match self {
            Self::Sha1 | Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// Number of digits of a code: 6, 7 or 8 (RFC 4226 section 5.3 requires at least 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the common default.
    pub const SIX: Digits = Digits(6);

    /// Accepts 6, 7 or 8.
    pub fn new(n: u8) -> Option<Self> {
        (6..=8).contains(&n).then_some(Self(n))
    }

    /// The number of digits.
    pub fn get(self) -> u8 {
        self.0
    }

    /// 10^digits, the modulus of dynamic truncation.
    pub fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

/// Why a presented code was refused before any HMAC was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OtpParseError {
    /// Something other than ASCII digits.
    #[error("the code must consist of ASCII digits only")]
    NotDigits,
    /// Not the token's number of digits.
    #[error("the code has the wrong number of digits")]
    WrongLength,
}

/// A one-time code: ASCII digits only. Compared in constant time; never printed.
#[derive(Clone)]
pub struct Otp(Zeroizing<String>);

impl Otp {
    /// Parses a presented code of any supported length (4 to 10 digits).
    pub fn parse(s: &str) -> Result<Self, OtpParseError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OtpParseError::NotDigits);
        }
        if !(4..=10).contains(&s.len()) {
            return Err(OtpParseError::WrongLength);
        }
        Ok(Self(Zeroizing::new(s.to_owned())))
    }

    /// Formats `value` zero-padded to `digits` (RFC 4226 section 5.3, step 3).
    pub fn from_value(value: u32, digits: Digits) -> Self {
        let width = usize::from(digits.get());
        Self(Zeroizing::new(format!("{value:0width$}")))
    }

    /// Number of digits of this code.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a parsed code has at least four digits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this code has exactly `digits` digits.
    pub fn has_digits(&self, digits: Digits) -> bool {
        self.0.len() == usize::from(digits.get())
    }

    /// Constant-time equality (for equal lengths; lengths are not secret).
    pub fn ct_eq(&self, other: &Otp) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }

    /// The digits, for the few places that must show or send the code.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Otp([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_must_be_ascii_digits_of_a_sane_length() {
        assert!(Otp::parse("123456").is_ok());
        assert_eq!(Otp::parse("12a456").err(), Some(OtpParseError::NotDigits));
        assert_eq!(Otp::parse("").err(), Some(OtpParseError::NotDigits));
        assert_eq!(Otp::parse("١٢٣٤٥٦").err(), Some(OtpParseError::NotDigits));
        assert_eq!(Otp::parse("123").err(), Some(OtpParseError::WrongLength));
        assert_eq!(
            Otp::parse("12345678901").err(),
            Some(OtpParseError::WrongLength)
        );
    }

    #[test]
    fn values_are_zero_padded_to_the_digit_count() {
        let d = Digits::new(8).unwrap();
        assert_eq!(Otp::from_value(42, d).expose(), "00000042");
        assert!(Otp::from_value(42, d).has_digits(d));
    }

    #[test]
    fn constant_time_equality_compares_digits() {
        let a = Otp::parse("123456").unwrap();
        assert!(a.ct_eq(&Otp::parse("123456").unwrap()));
        assert!(!a.ct_eq(&Otp::parse("123457").unwrap()));
        assert!(!format!("{a:?}").contains("123"));
    }

    #[test]
    fn digits_outside_six_to_eight_are_refused() {
        assert!(Digits::new(5).is_none());
        assert!(Digits::new(9).is_none());
        assert_eq!(Digits::new(7).map(Digits::modulus), Some(10_000_000));
    }
}
