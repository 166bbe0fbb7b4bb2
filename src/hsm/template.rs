//! The one place that builds PKCS#11 attribute templates for the service's objects.
//!
//! Every secret key is sensitive. Seeds and long-lived keys are never extractable; the only
//! extractable object is the short-lived session copy of a seed that is wrapped under the KEK
//! at enrolment (`CKA_EXTRACTABLE` is what `C_WrapKey` requires) and destroyed at once.

use cryptoki::object::{Attribute, KeyType, ObjectClass};

/// Common attributes of every secret key the service creates.
fn secret(label: Option<&str>, token: bool) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
    ];
    if let Some(label) = label {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    t
}

/// The seed key-encryption key: AES-256, wrap and unwrap only (never encrypt or decrypt).
pub(crate) fn kek(label: &str) -> Vec<Attribute> {
    let mut t = secret(Some(label), true);
    t.extend([
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
    ]);
    t
}

/// A long-lived HMAC-SHA256 key of the service (channel-key MAC key).
pub(crate) fn mac_key(label: &str) -> Vec<Attribute> {
    let mut t = secret(Some(label), true);
    t.extend([
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
    ]);
    t
}

/// A seed as a persistent token object (`object` storage): sign only, never extractable.
pub(crate) fn seed_object(label: &str, value: Vec<u8>) -> Vec<Attribute> {
    let mut t = secret(Some(label), true);
    t.extend([
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Value(value),
    ]);
    t
}

/// A transient session copy of a seed, created only to be wrapped under the KEK.
pub(crate) fn seed_to_wrap(value: Vec<u8>) -> Vec<Attribute> {
    let mut t = secret(None, false);
    t.extend([
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Extractable(true),
        Attribute::Sign(false),
        Attribute::Value(value),
    ]);
    t
}

/// The session object a wrapped seed is unwrapped into: sign only, never extractable.
pub(crate) fn unwrapped_seed() -> Vec<Attribute> {
    let mut t = secret(None, false);
    t.extend([
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ]);
    t
}

/// Overwrites any `CKA_VALUE` in a template once the HSM has taken it.
pub(crate) fn scrub(template: &mut [Attribute]) {
    for attribute in template {
        if let Attribute::Value(v) = attribute {
            zeroize::Zeroize::zeroize(v);
        }
    }
}
