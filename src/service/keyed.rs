//! Codes bound to an opaque key and returned to the caller (MOSIP's OTP manager): generated
//! like any challenge, verified against the key's newest code, and after too many wrong
//! codes the key is frozen for a while — neither generation nor validation works then.

use super::challenge::key_destination;
use super::{Caller, ChallengeRequest, Delivery, Error, Missing, Services, Verdict};
use crate::domain::Otp;

/// A surface's failure limit and freeze.
#[derive(Clone, Copy, Debug)]
pub struct Freezing {
    /// Wrong codes that freeze the key.
    pub max_failures: u32,
    /// How long the key stays frozen.
    pub freeze_seconds: u32,
}

/// How generating a keyed code ended.
#[derive(Debug)]
pub enum KeyedCode {
    /// A new code, to hand back to the caller.
    Generated(Otp),
    /// The key is frozen.
    Frozen,
}

impl Services {
    /// The configured failure limit and freeze of keyed codes.
    pub fn freezing(&self) -> Freezing {
        Freezing {
            max_failures: self.challenge_policy.keyed_max_failures,
            freeze_seconds: self.challenge_policy.keyed_freeze_seconds,
        }
    }

    /// A new code for `key`, returned to the caller (which must be allowed to receive codes).
    pub fn generate_keyed(
        &self,
        caller: &Caller,
        key: &str,
        ttl_seconds: Option<u32>,
    ) -> Result<KeyedCode, Error> {
        let destination = key_destination(key)?;
        if self
            .store
            .frozen(caller.channel.id, &destination, self.now())?
        {
            return Ok(KeyedCode::Frozen);
        }
        let created = self.create_challenge(
            caller,
            ChallengeRequest {
                key: Some(key.to_owned()),
                delivery: Some(Delivery::Response),
                ttl_seconds,
                ..ChallengeRequest::default()
            },
        )?;
        created
            .otp
            .map(KeyedCode::Generated)
            .ok_or_else(|| Error::Internal("a returned challenge without its code".into()))
    }

    /// Verifies `otp` against the newest code of `key`; `Locked` while the key is frozen.
    pub fn verify_keyed(
        &self,
        caller: &Caller,
        key: &str,
        otp: &str,
        freezing: Freezing,
    ) -> Result<Verdict, Error> {
        let destination = key_destination(key)?;
        let now = self.now();
        if self.store.frozen(caller.channel.id, &destination, now)? {
            return Ok(Verdict::Locked);
        }
        let row = self
            .store
            .newest_challenge(caller.channel.id, &destination, None)?
            .ok_or(Error::NotFound(Missing::Challenge))?;
        let otp = Otp::parse(otp).map_err(|_| Error::InvalidOtp)?;
        let (verdict, locked_now) =
            self.settle_challenge_within(caller, &row, &otp, freezing.max_failures)?;
        if locked_now || verdict == Verdict::Locked {
            let until = now + chrono::Duration::seconds(i64::from(freezing.freeze_seconds));
            self.store.freeze(caller.channel.id, &destination, until)?;
        }
        Ok(verdict)
    }
}
