//! Containers for secrets: redacted `Debug`, no `Display`, zeroized on drop.

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes: a seed, a channel key's raw bytes, a wrapped blob's clear form.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroized when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret itself, for the few places that must hand it to the HSM.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access, to fill the buffer in place (from the HSM's RNG).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Appends bytes (the buffer is zeroized on drop like the rest).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

/// A secret string: a PIN, a channel key, a one-time code.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `value`; it is zeroized when this value is dropped.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let b = SecretBytes::new(b"hunter2-seed".to_vec());
        let s = SecretString::new("4711-pin".into());
        let shown = format!("{b:?} {s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("4711"));
        assert!(shown.contains("redacted"));
    }
}
