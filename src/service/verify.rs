//! Verification and resynchronisation.
//!
//! The order follows the design: read the token, compute the window's MACs in the HSM without
//! holding a row lock, then settle the outcome in one transaction whose conditional `UPDATE`
//! decides it (promise 4), with its audit row (promise 7). Failures are counted atomically and
//! lock the token at the limit (promise 5). Any HSM or database failure is an error, never an
//! accept (promise 8).

use uuid::Uuid;

use super::{audit, Caller, Error, Missing, Services, Token};
use crate::domain::{Otp, TokenKind};
use crate::oath::time_step;
use crate::oath::window::{self, Match};
use crate::store::{Advance, AuditEntry, Candidates, ChallengeRow, Failure};

/// The answer to a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The code is right and was unused: accepted, and now used.
    Accept,
    /// The challenge has expired.
    Expired,
    /// The token or challenge is locked: nothing is accepted until it is unlocked.
    Locked,
    /// The code is wrong.
    Reject,
    /// The code was right once but has been used (or superseded) already.
    Replay,
    /// The challenge was already used.
    Used,
}

impl Verdict {
    /// The stable name in API answers, metrics and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Expired => "expired",
            Self::Locked => "locked",
            Self::Reject => "reject",
            Self::Replay => "replay",
            Self::Used => "used",
        }
    }
}

impl Services {
    /// Verifies `otp` against `token` of the caller's channel (read with the caller's
    /// channel: see [`Services::authenticate_key_naming`]), from an async task: the window is
    /// searched here, in the HSM, and the group commit is awaited without a blocking thread.
    pub async fn verify_token(
        &self,
        caller: &Caller,
        token: Token,
        otp: &str,
    ) -> Result<Verdict, Error> {
        let otp = parse_for(otp, &token)?;
        let verdict = self
            .verify_candidates(caller, std::slice::from_ref(&token), &[], &otp)
            .await?;
        self.count(verdict, "token");
        Ok(verdict)
    }

    /// Verifies `otp` against every token of `user` in the caller's channel; the first token
    /// it matches decides. The user's open challenges count too: their codes are accepted
    /// once, like a token's. From an async task, like [`Self::verify_token`]: the user's
    /// tokens and challenges are read together with other verifications' (one grouped read).
    pub async fn verify_user(
        &self,
        caller: &Caller,
        user: &str,
        otp: &str,
    ) -> Result<Verdict, Error> {
        let found = self
            .store
            .user_candidates_async(caller.channel.id, user, self.now());
        self.verify_user_candidates(caller, user, found.await?, otp)
            .await
    }

    /// [`Self::verify_user`] with the user's candidates already read (with the caller's
    /// channel: see [`Services::authenticate_key_naming_user`]).
    pub async fn verify_user_candidates(
        &self,
        caller: &Caller,
        user: &str,
        found: Candidates,
        otp: &str,
    ) -> Result<Verdict, Error> {
        if found.is_empty() {
            // A directory user with nothing open (say, their code was just used) is a reject;
            // only a user unknown to the channel is not found.
            if !found.in_directory {
                return Err(Error::NotFound(Missing::User));
            }
            let mut entry = audit(caller, None, "verify", "reject");
            entry.user_id = Some(user.to_owned());
            self.store.append_audit_async(&entry).await?;
            self.count(Verdict::Reject, "user");
            return Ok(Verdict::Reject);
        }
        let otp = Otp::parse(otp).map_err(|_| Error::InvalidOtp)?;
        let mut tokens = Vec::with_capacity(found.tokens.len());
        for row in found.tokens {
            let token = Token::try_from(row)?;
            if otp.has_digits(token.digits) {
                tokens.push(token);
            }
        }
        let challenges: Vec<ChallengeRow> = found
            .challenges
            .into_iter()
            .filter(|c| usize::try_from(c.digits).is_ok_and(|d| d == otp.len()))
            .collect();
        if tokens.is_empty() && challenges.is_empty() {
            return Err(Error::InvalidOtp);
        }
        let verdict = self
            .verify_candidates(caller, &tokens, &challenges, &otp)
            .await?;
        self.count(verdict, "user");
        Ok(verdict)
    }

    /// Resynchronises the token `id` from two consecutive codes (RFC 4226 section 7.4; for
    /// TOTP this also learns the token's clock drift).
    pub fn resync(
        &self,
        caller: &Caller,
        id: Uuid,
        otp1: &str,
        otp2: &str,
    ) -> Result<Verdict, Error> {
        let token = self.token(caller, id)?;
        let (otp1, otp2) = (parse_for(otp1, &token)?, parse_for(otp2, &token)?);
        if token.locked {
            self.store
                .append_audit(&audit(caller, Some(&token), "resync", "locked"))?;
            return Ok(Verdict::Locked);
        }
        let now_step = self.now_step(&token);
        let range = match token.kind {
            TokenKind::Hotp => {
                window::hotp_window(token.next_factor, self.policy.hotp_resync_window, 0)
            }
            TokenKind::Totp => window::totp_window(now_step, 0, self.policy.totp_resync_window),
        };
        let found = self.hsm.with_seed(&token.seed, token.algorithm, |mac| {
            window::find_pair(mac, &otp1, &otp2, token.digits, range, token.next_factor)
        })?;
        let Some(first) = found else {
            self.fail(caller, &[token], "resync")?;
            return Ok(Verdict::Reject);
        };
        let second = first + 1;
        let drift = match token.kind {
            TokenKind::Hotp => None,
            TokenKind::Totp => Some(signed_difference(second, now_step)?),
        };
        let entry = audit(caller, Some(&token), "resync", "accept");
        Ok(
            match self
                .store
                .advance(token.id, as_i64(second)?, drift, entry)?
            {
                Advance::Done => Verdict::Accept,
                Advance::Replay => Verdict::Replay,
                Advance::Locked => Verdict::Locked,
                Advance::Gone => return Err(Error::NotFound(Missing::Token)),
            },
        )
    }

    /// Tries `otp` on each unlocked token, then on each open challenge; settles the first
    /// match, or counts a failure on every token and on the newest challenge. Each outcome is
    /// awaited from the group commit.
    async fn verify_candidates(
        &self,
        caller: &Caller,
        candidates: &[Token],
        challenges: &[ChallengeRow],
        otp: &Otp,
    ) -> Result<Verdict, Error> {
        let open: Vec<&Token> = candidates.iter().filter(|t| !t.locked).collect();
        if open.is_empty() && challenges.is_empty() {
            for token in candidates {
                let entry = audit(caller, Some(token), "verify", "locked");
                self.store.append_audit_async(&entry).await?;
            }
            return Ok(Verdict::Locked);
        }
        for token in &open {
            match self.find(token, otp)? {
                Match::Fresh(factor) => {
                    let entry = audit(caller, Some(token), "verify", "accept");
                    let factor = as_i64(factor)?;
                    let advance = self.store.advance_async(token.id, factor, None, entry);
                    return Ok(verdict_of(advance.await?));
                }
                Match::Used(factor) => {
                    let entry = replay(caller, token, factor)?;
                    self.store.append_audit_async(&entry).await?;
                    return Ok(Verdict::Replay);
                }
                Match::Miss => {}
            }
        }
        for challenge in challenges {
            if self.challenge_matches(challenge, otp)? {
                return self.use_challenge_async(caller, challenge).await;
            }
        }
        let open: Vec<Token> = open.into_iter().cloned().collect();
        let outcomes = if open.is_empty() {
            Vec::new()
        } else {
            let (ids, max, entry) = self.failure(caller, &open, "verify");
            self.store.record_failures_async(&ids, max, &entry).await?
        };
        if let Some(newest) = challenges.first() {
            self.fail_challenge_async(caller, newest).await?;
        }
        Ok(if challenges.is_empty() {
            failure_verdict(&outcomes)
        } else {
            Verdict::Reject
        })
    }

    /// The window search for one token, in the HSM.
    fn find(&self, token: &Token, otp: &Otp) -> Result<Match, Error> {
        let range = match token.kind {
            TokenKind::Hotp => window::hotp_window(token.next_factor, self.policy.hotp_window, 1),
            TokenKind::Totp => {
                window::totp_window(self.now_step(token), token.drift, self.policy.totp_window)
            }
        };
        Ok(self.hsm.with_seed(&token.seed, token.algorithm, |mac| {
            window::find(mac, otp, token.digits, range, token.next_factor)
        })?)
    }

    fn fail(&self, caller: &Caller, tokens: &[Token], action: &str) -> Result<Vec<Failure>, Error> {
        let (ids, max, entry) = self.failure(caller, tokens, action);
        Ok(self.store.record_failures(&ids, max, &entry)?)
    }

    /// A failure counted on `tokens`: their ids, the failure limit and the audit row.
    fn failure(
        &self,
        caller: &Caller,
        tokens: &[Token],
        action: &str,
    ) -> (Vec<Uuid>, i32, AuditEntry) {
        let ids: Vec<Uuid> = tokens.iter().map(|t| t.id).collect();
        let mut entry = audit(caller, None, action, "reject");
        entry.user_id = tokens.first().map(|t| t.user.clone());
        let max = i32::try_from(self.policy.max_failures).unwrap_or(i32::MAX);
        (ids, max, entry)
    }

    fn now_step(&self, token: &Token) -> u64 {
        time_step(self.clock.now_unix(), token.period)
    }

    fn count(&self, verdict: Verdict, target: &'static str) {
        self.metrics
            .verifications
            .with_label_values(&[target, verdict.as_str()])
            .inc();
    }
}

/// The verdict of a verification whose code was right, from its conditional advance.
fn verdict_of(advance: Advance) -> Verdict {
    match advance {
        Advance::Done => Verdict::Accept,
        Advance::Replay => Verdict::Replay,
        Advance::Locked => Verdict::Locked,
        Advance::Gone => Verdict::Reject,
    }
}

/// A wrong code's verdict: locked if it locked (or found locked) every token it was counted on.
fn failure_verdict(outcomes: &[Failure]) -> Verdict {
    if !outcomes.is_empty() && outcomes.iter().all(|o| *o == Failure::Locked) {
        Verdict::Locked
    } else {
        Verdict::Reject
    }
}

/// The audit row of a code that was right once and has been used.
fn replay(caller: &Caller, token: &Token, factor: u64) -> Result<AuditEntry, Error> {
    let mut entry = audit(caller, Some(token), "verify", "replay");
    entry.moving_factor = Some(as_i64(factor)?);
    Ok(entry)
}

/// Parses a presented code and checks it has the token's length.
fn parse_for(otp: &str, token: &Token) -> Result<Otp, Error> {
    let otp = Otp::parse(otp).map_err(|_| Error::InvalidOtp)?;
    if otp.has_digits(token.digits) {
        Ok(otp)
    } else {
        Err(Error::InvalidOtp)
    }
}

fn as_i64(factor: u64) -> Result<i64, Error> {
    i64::try_from(factor).map_err(|_| Error::Internal("moving factor out of range".into()))
}

fn signed_difference(a: u64, b: u64) -> Result<i32, Error> {
    let d = i128::from(a) - i128::from(b);
    i32::try_from(d).map_err(|_| Error::Internal("drift out of range".into()))
}
