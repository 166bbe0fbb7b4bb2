//! Tokens: enrolment (promise 1: the seed goes into the HSM and is zeroized here), reading,
//! deleting and unlocking.

use uuid::Uuid;

use super::{audit, Caller, Error, Missing, Services};
use crate::domain::{Algorithm, Digits, SecretBytes, SecretString, TokenKind};
use crate::hsm::{SeedRef, SeedStorage};
use crate::oath::Period;
use crate::store::{NewToken, TokenRow};

/// Shortest imported seed: RFC 4226 section 4, requirement R6 (128 bits).
const MIN_SEED_BYTES: usize = 16;
/// Longest imported seed.
const MAX_SEED_BYTES: usize = 128;
/// Longest user id.
const MAX_USER_LEN: usize = 128;

/// A token as the services see it.
#[derive(Clone, Debug)]
pub struct Token {
    /// Identifier.
    pub id: Uuid,
    /// Its user.
    pub user: String,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// Hash function.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// TOTP period.
    pub period: Period,
    /// Lowest unused counter / step.
    pub next_factor: u64,
    /// Known TOTP drift in steps.
    pub drift: i64,
    /// Where the seed is.
    pub seed: SeedRef,
    /// Issuer.
    pub issuer: Option<String>,
    /// Consecutive failures.
    pub failure_count: u32,
    /// Whether it is locked.
    pub locked: bool,
    /// Storage mode.
    pub storage: SeedStorage,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A seed supplied by the caller, or none (the HSM makes one).
#[derive(Debug)]
pub enum SeedInput {
    /// Generate a seed in the HSM's RNG and show it once as an `otpauth://` URI.
    Generate,
    /// Import this seed; it never appears in any answer.
    Import(SecretBytes),
}

/// What to enrol.
#[derive(Debug)]
pub struct Enrolment {
    /// The user.
    pub user: String,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// Hash function.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// TOTP period.
    pub period: Period,
    /// Initial HOTP counter.
    pub counter: u64,
    /// The seed.
    pub seed: SeedInput,
    /// Issuer for the authenticator app.
    pub issuer: Option<String>,
}

/// An enrolled token, with the provisioning URI when the seed was generated.
#[derive(Debug)]
pub struct Enrolled {
    /// The token.
    pub token: Token,
    /// `otpauth://` Key URI; only when the HSM generated the seed. Shown once.
    pub otpauth_uri: Option<SecretString>,
}

impl Services {
    /// Enrols a token for `enrolment.user` in the caller's channel.
    pub fn enrol(&self, caller: &Caller, mut enrolment: Enrolment) -> Result<Enrolled, Error> {
        check(&enrolment)?;
        let seed_input = std::mem::replace(&mut enrolment.seed, SeedInput::Generate);
        let (seed, generated) = match seed_input {
            SeedInput::Generate => (self.hsm.random(enrolment.algorithm.output_len())?, true),
            SeedInput::Import(seed) => (seed, false),
        };
        let storage = self.policy.seed_storage;
        let seed_ref = self.hsm.store_seed(&seed, enrolment.algorithm, storage)?;
        let otpauth_uri = generated.then(|| otpauth_uri(&enrolment, &caller.channel.name, &seed));
        drop(seed);
        let new = new_token(caller, &enrolment, &seed_ref)?;
        let entry = enrol_audit(caller, &new, "enrol");
        let row = match self.store.insert_token(&new, &entry) {
            Ok(row) => row,
            Err(e) => {
                // Undo: no orphan seed object in the HSM.
                if let Err(undo) = self.hsm.destroy_seed(&seed_ref) {
                    tracing::error!(error = %undo, "could not destroy the seed of a failed enrolment");
                }
                return Err(e.into());
            }
        };
        Ok(Enrolled {
            token: Token::try_from(row)?,
            otpauth_uri,
        })
    }

    /// The token `id` of the caller's channel.
    pub fn token(&self, caller: &Caller, id: Uuid) -> Result<Token, Error> {
        found(self.store.token(caller.channel.id, id)?)
    }

    /// Deletes the token `id`; in object storage its HSM object is destroyed too.
    pub fn delete_token(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        let token = self.token(caller, id)?;
        let entry = audit(caller, Some(&token), "delete", "ok");
        let row = self
            .store
            .delete_token(caller.channel.id, id, &entry)?
            .ok_or(Error::NotFound(Missing::Token))?;
        let token = Token::try_from(row)?;
        self.hsm.destroy_seed(&token.seed)?;
        Ok(())
    }

    /// Unlocks the token `id` and clears its failure count.
    pub fn unlock(&self, caller: &Caller, id: Uuid) -> Result<Token, Error> {
        let token = self.token(caller, id)?;
        let entry = audit(caller, Some(&token), "unlock", "ok");
        self.store
            .unlock_token(caller.channel.id, id, &entry)?
            .ok_or(Error::NotFound(Missing::Token))
            .and_then(Token::try_from)
    }
}

impl TryFrom<TokenRow> for Token {
    type Error = Error;

    fn try_from(row: TokenRow) -> Result<Self, Error> {
        let bad =
            |what: &str| Error::Internal(format!("token {}: bad {what} in the database", row.id));
        let (seed, storage) = match (&row.wrapped_seed, row.kek_version, &row.hsm_label) {
            (Some(blob), Some(kek_version), None) => (
                SeedRef::Wrapped {
                    blob: blob.clone(),
                    kek_version,
                },
                SeedStorage::Wrapped,
            ),
            (None, None, Some(label)) => (
                SeedRef::Object {
                    label: label.clone(),
                },
                SeedStorage::Object,
            ),
            _ => return Err(bad("seed reference")),
        };
        Ok(Self {
            id: row.id,
            kind: TokenKind::parse(&row.kind).ok_or_else(|| bad("kind"))?,
            algorithm: Algorithm::parse(&row.algorithm).ok_or_else(|| bad("algorithm"))?,
            digits: u8::try_from(row.digits)
                .ok()
                .and_then(Digits::new)
                .ok_or_else(|| bad("digits"))?,
            period: u32::try_from(row.period)
                .ok()
                .and_then(Period::new)
                .ok_or_else(|| bad("period"))?,
            next_factor: u64::try_from(row.next_factor).map_err(|_| bad("next_factor"))?,
            drift: i64::from(row.drift),
            failure_count: u32::try_from(row.failure_count).unwrap_or(0),
            locked: row.locked_at.is_some(),
            seed,
            storage,
            user: row.user_id,
            issuer: row.issuer,
            created_at: row.created_at,
        })
    }
}

/// User ids and issuers: 1 to 128 characters, no control characters.
/// Checks what an enrolment says before anything is stored.
pub(super) fn check(e: &Enrolment) -> Result<(), Error> {
    if !valid_user(&e.user) {
        return Err(Error::InvalidRequest("user"));
    }
    if e.issuer
        .as_deref()
        .is_some_and(|i| !valid_user(i) || i.contains(':'))
    {
        return Err(Error::InvalidRequest("issuer"));
    }
    if i64::try_from(e.counter).is_err() {
        return Err(Error::InvalidRequest("counter"));
    }
    if let SeedInput::Import(seed) = &e.seed {
        if !(MIN_SEED_BYTES..=MAX_SEED_BYTES).contains(&seed.len()) {
            return Err(Error::InvalidSeed);
        }
    }
    Ok(())
}

/// The row of a checked enrolment whose seed is now in the HSM at `seed_ref`.
pub(super) fn new_token(
    caller: &Caller,
    e: &Enrolment,
    seed_ref: &SeedRef,
) -> Result<NewToken, Error> {
    let (wrapped_seed, kek_version, hsm_label) = match seed_ref {
        SeedRef::Wrapped { blob, kek_version } => (Some(blob.clone()), Some(*kek_version), None),
        SeedRef::Object { label } => (None, None, Some(label.clone())),
    };
    Ok(NewToken {
        id: Uuid::new_v4(),
        channel_id: caller.channel.id,
        user_id: e.user.clone(),
        kind: e.kind.as_str().to_owned(),
        algorithm: e.algorithm.as_str().to_owned(),
        digits: i16::from(e.digits.get()),
        period: i32::try_from(e.period.seconds()).unwrap_or(30),
        next_factor: i64::try_from(e.counter).map_err(|_| Error::InvalidRequest("counter"))?,
        wrapped_seed,
        kek_version,
        hsm_label,
        issuer: e.issuer.clone(),
    })
}

/// The audit row of a new token.
pub(super) fn enrol_audit(
    caller: &Caller,
    new: &NewToken,
    action: &str,
) -> crate::store::AuditEntry {
    let mut entry = audit(caller, None, action, "ok");
    entry.token_id = Some(new.id);
    entry.user_id = Some(new.user_id.clone());
    entry
}

/// The token of a read, or `NotFound` if there was none.
pub(super) fn found(row: Option<TokenRow>) -> Result<Token, Error> {
    row.ok_or(Error::NotFound(Missing::Token))
        .and_then(Token::try_from)
}

pub(super) fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.chars().count() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

/// The Key Uri Format used by authenticator apps:
/// `otpauth://TYPE/ISSUER:USER?secret=BASE32&issuer=ISSUER&algorithm=..&digits=..&period=..`.
fn otpauth_uri(e: &Enrolment, channel: &str, seed: &SecretBytes) -> SecretString {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let issuer = e.issuer.as_deref().unwrap_or(channel);
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let secret = zeroize::Zeroizing::new(data_encoding::BASE32_NOPAD.encode(seed.expose()));
    let moving = match e.kind {
        TokenKind::Hotp => format!("counter={}", e.counter),
        TokenKind::Totp => format!("period={}", e.period.seconds()),
    };
    SecretString::new(format!(
        "otpauth://{}/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&{}",
        e.kind.as_str(),
        enc(issuer),
        enc(&e.user),
        secret.as_str(),
        enc(issuer),
        e.algorithm.as_str(),
        e.digits.get(),
        moving
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_uri_carries_every_parameter() {
        let e = Enrolment {
            user: "alice@example.com".into(),
            kind: TokenKind::Totp,
            algorithm: Algorithm::Sha256,
            digits: Digits::new(8).unwrap(),
            period: Period::new(60).unwrap(),
            counter: 0,
            seed: SeedInput::Generate,
            issuer: Some("Acme Bank".into()),
        };
        let uri = otpauth_uri(
            &e,
            "web",
            &SecretBytes::new(b"12345678901234567890".to_vec()),
        );
        assert_eq!(
            uri.expose(),
            "otpauth://totp/Acme%20Bank:alice%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Bank&algorithm=SHA256&digits=8&period=60"
        );
    }

    #[test]
    fn user_ids_must_be_printable_and_bounded() {
        assert!(valid_user("alice"));
        assert!(!valid_user(""));
        assert!(!valid_user("a\nb"));
        assert!(!valid_user(&"x".repeat(129)));
    }
}
