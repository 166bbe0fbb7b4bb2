//! The one place that builds PKCS#11 attribute templates for the service's objects.
//!
//! Every secret key is sensitive. Seeds and long-lived keys are never extractable; the only
//! extractable object is the short-lived session copy of a seed that is wrapped under the KEK
//! at enrolment (`CKA_EXTRACTABLE` is what `C_WrapKey` requires) and destroyed at once.

use cryptoki::object::{Attribute, KeyType, ObjectClass};

/// What a key may be used for; everything not listed is explicitly denied, because tokens
/// (SoftHSM among them) default unlisted usage flags to true.
#[derive(Clone, Copy, Default)]
struct Usage {
    sign: bool,
    verify: bool,
    wrap: bool,
    unwrap: bool,
    encrypt: bool,
    decrypt: bool,
}

/// Common attributes of every secret key the service creates. Never derive; encrypt and
/// decrypt only for the outbox key: a key serves the one purpose it exists for.
///
/// Token objects are private: a session that has not logged in (another program's, say)
/// cannot see them. Session objects (unwrapped seeds, the transient copy of a seed being
/// wrapped) are not: only this process's sessions, all logged in, can reach them, so
/// `CKA_PRIVATE` would hide them from no one, and SoftHSM keeps a private object's value
/// encrypted under its token key and decrypts it at every `C_SignInit` (about 40 % of an
/// HMAC's time on a hot seed). Sensitivity and non-extractability, which keep the value inside the HSM,
/// are the same for both.
fn secret(label: Option<&str>, token: bool, key_type: KeyType, usage: Usage) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(token),
        Attribute::Private(token),
        Attribute::Sensitive(true),
        Attribute::Encrypt(usage.encrypt),
        Attribute::Decrypt(usage.decrypt),
        Attribute::Derive(false),
        Attribute::Sign(usage.sign),
        Attribute::Verify(usage.verify),
        Attribute::Wrap(usage.wrap),
        Attribute::Unwrap(usage.unwrap),
    ];
    if let Some(label) = label {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    t
}

/// The seed key-encryption key: AES-256, wrap and unwrap only.
pub(crate) fn kek(label: &str) -> Vec<Attribute> {
    let usage = Usage {
        wrap: true,
        unwrap: true,
        ..Usage::default()
    };
    let mut t = secret(Some(label), true, KeyType::AES, usage);
    t.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Extractable(false),
    ]);
    t
}

/// A long-lived HMAC-SHA256 key of the service (channel-key MAC key): sign and verify only.
pub(crate) fn mac_key(label: &str) -> Vec<Attribute> {
    let usage = Usage {
        sign: true,
        verify: true,
        ..Usage::default()
    };
    let mut t = secret(Some(label), true, KeyType::GENERIC_SECRET, usage);
    t.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Extractable(false),
    ]);
    t
}

/// A seed as a persistent token object (`object` storage): sign only, never extractable.
pub(crate) fn seed_object(label: &str, value: Vec<u8>) -> Vec<Attribute> {
    let mut t = secret(Some(label), true, KeyType::GENERIC_SECRET, SIGN_ONLY);
    t.extend([Attribute::Extractable(false), Attribute::Value(value)]);
    t
}

/// A transient session copy of a seed, created only to be wrapped under the KEK.
pub(crate) fn seed_to_wrap(value: Vec<u8>) -> Vec<Attribute> {
    let mut t = secret(None, false, KeyType::GENERIC_SECRET, Usage::default());
    t.extend([Attribute::Extractable(true), Attribute::Value(value)]);
    t
}

/// The session object a wrapped seed is unwrapped into: sign only, never extractable.
pub(crate) fn unwrapped_seed() -> Vec<Attribute> {
    let mut t = secret(None, false, KeyType::GENERIC_SECRET, SIGN_ONLY);
    t.push(Attribute::Extractable(false));
    t
}

/// A session copy of a long-lived key or a seed object (`C_CopyObject`): only `CKA_TOKEN`
/// changes; the copy keeps the original's sensitivity, non-extractability and usage, and
/// stays private (a copy may not lower `CKA_PRIVATE`: SoftHSM refuses it).
pub(crate) fn session_copy() -> Vec<Attribute> {
    vec![Attribute::Token(false)]
}

const SIGN_ONLY: Usage = Usage {
    sign: true,
    verify: false,
    wrap: false,
    unwrap: false,
    encrypt: false,
    decrypt: false,
};

/// The outbox key: AES-256 for AES-GCM over pending messages, nothing else.
pub(crate) fn data_key(label: &str) -> Vec<Attribute> {
    let usage = Usage {
        encrypt: true,
        decrypt: true,
        ..Usage::default()
    };
    let mut t = secret(Some(label), true, KeyType::AES, usage);
    t.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Extractable(false),
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
