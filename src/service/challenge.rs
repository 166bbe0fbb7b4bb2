//! Out-of-band challenges: a code from the HSM's RNG, stored only as an HSM MAC over
//! (challenge id, code) (promise 3), sent through the outbox or returned to the caller,
//! single use, locked after repeated wrong codes (promise 5), under rate limits and budgets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::message::{render, subject, valid_lang, LANGUAGES};
use super::{audit, Caller, Error, Missing, Services, Verdict};
use crate::domain::{E164Phone, Email, Otp, MAX_CODE_DIGITS, MIN_CODE_DIGITS};
use crate::hsm::{CHALLENGE_MAC_VERSION, OUTBOX_KEY_VERSION};
use crate::store::{AuditEntry, ChallengeRow, Creation, Limits, NewMessage, Settled};

/// Challenge lifetimes, failure limit and rate limits (configurable under `[challenges]`).
#[derive(Clone, Copy, Debug)]
pub struct ChallengePolicy {
    /// Lifetime when the request names none.
    pub default_ttl_seconds: u32,
    /// Longest lifetime a request may ask for.
    pub max_ttl_seconds: u32,
    /// Wrong codes that lock a challenge.
    pub max_failures: u32,
    /// Challenges per destination per window.
    pub per_destination_limit: u32,
    /// That window.
    pub per_destination_window_seconds: u32,
    /// Challenges per channel per window.
    pub per_channel_limit: u32,
    /// That window.
    pub per_channel_window_seconds: u32,
    /// Wrong codes that freeze a key of the keyed surface (MOSIP's OTP manager: 3).
    pub keyed_max_failures: u32,
    /// How long such a key stays frozen (MOSIP: 7200 s).
    pub keyed_freeze_seconds: u32,
}

impl Default for ChallengePolicy {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 600,
            max_ttl_seconds: 3600,
            max_failures: 5,
            per_destination_limit: 5,
            per_destination_window_seconds: 600,
            per_channel_limit: 1000,
            per_channel_window_seconds: 60,
            keyed_max_failures: 3,
            keyed_freeze_seconds: 7200,
        }
    }
}

/// How a code reaches the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// By e-mail.
    Email,
    /// In the API answer, to a channel allowed to receive codes.
    Response,
    /// By SMS.
    Sms,
    /// By a voice call.
    Voice,
}

impl Delivery {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Response => "response",
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }
}

/// A request for a challenge.
#[derive(Clone, Debug, Default)]
pub struct ChallengeRequest {
    /// The user (its directory entry gives the destination when none is named).
    pub user: Option<String>,
    /// Phone number or e-mail address.
    pub destination: Option<String>,
    /// How to deliver.
    pub delivery: Option<Delivery>,
    /// Template language (`en_US` by default).
    pub lang: Option<String>,
    /// Application named in the message.
    pub app: Option<String>,
    /// Lifetime.
    pub ttl_seconds: Option<u32>,
    /// Code length (6 by default, 4 to 10).
    pub digits: Option<u8>,
    /// A channel template's `ref_id`.
    pub template: Option<String>,
    /// An opaque key to bind a returned code to (MOSIP's OTP manager), instead of an address.
    pub key: Option<String>,
}

/// A challenge as shown to its channel: never the code.
#[derive(Clone, Debug, Serialize)]
pub struct Challenge {
    /// Identifier.
    pub id: Uuid,
    /// The user, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Where the code went.
    pub destination: String,
    /// How.
    pub delivery: String,
    /// Application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// `open`, `used`, `locked` (or `expired`, derived).
    pub state: String,
    /// `pending`, `sent`, `failed`, `expired` or `returned`.
    pub delivery_status: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A new challenge, with its code when it is returned to the caller.
#[derive(Debug)]
pub struct CreatedChallenge {
    /// The challenge.
    pub challenge: Challenge,
    /// The code (`delivery: "response"` only).
    pub otp: Option<Otp>,
}

impl Services {
    /// Creates a challenge and queues (or returns) its code.
    pub fn create_challenge(
        &self,
        caller: &Caller,
        req: ChallengeRequest,
    ) -> Result<CreatedChallenge, Error> {
        let policy = self.challenge_policy;
        let delivery = req.delivery.ok_or(Error::InvalidRequest("delivery"))?;
        if delivery == Delivery::Response && !caller.channel.may_receive_otp {
            return Err(Error::OtpNotAllowed);
        }
        let digits = req.digits.unwrap_or(6);
        if !(MIN_CODE_DIGITS..=MAX_CODE_DIGITS).contains(&digits) {
            return Err(Error::InvalidRequest("digits"));
        }
        let ttl = req.ttl_seconds.unwrap_or(policy.default_ttl_seconds);
        if ttl == 0 || ttl > policy.max_ttl_seconds {
            return Err(Error::InvalidRequest("ttl_seconds"));
        }
        let lang = req.lang.as_deref().unwrap_or("en_US");
        if !valid_lang(lang) || (req.template.is_none() && !LANGUAGES.contains(&lang)) {
            return Err(Error::InvalidRequest("lang"));
        }
        if req
            .app
            .as_deref()
            .is_some_and(|a| !valid_label(a) || a.chars().count() > 64)
        {
            return Err(Error::InvalidRequest("app"));
        }
        let destination = self.destination(caller, &req, delivery)?;
        let now = self.now();
        let id = Uuid::new_v4();
        let code = self.hsm.challenge_code(digits)?;
        let code_mac = self.hsm.challenge_mac(id.as_bytes(), &code)?;
        let message = match delivery {
            Delivery::Response => None,
            kind => {
                let app = req.app.as_deref();
                let template = self.template_text(
                    caller.channel.id,
                    req.template.as_deref(),
                    lang,
                    app.is_some(),
                )?;
                let minutes = u64::from(ttl).div_ceil(60);
                let text = render(&template, &code, app, minutes, kind == Delivery::Voice);
                let payload = zeroize::Zeroizing::new(
                    serde_json::json!({"subject": subject(lang), "text": text.expose()})
                        .to_string(),
                );
                Some(NewMessage {
                    kind: kind.as_str().to_owned(),
                    destination: destination.clone(),
                    sealed: self.hsm.seal(payload.as_bytes(), id.as_bytes())?,
                    key_version: OUTBOX_KEY_VERSION,
                })
            }
        };
        let row = ChallengeRow {
            id,
            channel_id: caller.channel.id,
            user_id: req.user.clone(),
            destination,
            delivery: delivery.as_str().to_owned(),
            app: req.app.clone(),
            code_mac,
            mac_version: CHALLENGE_MAC_VERSION,
            digits: i16::from(digits),
            expires_at: now + chrono::Duration::seconds(i64::from(ttl)),
            failure_count: 0,
            state: "open".into(),
            delivery_status: if message.is_some() {
                "pending"
            } else {
                "returned"
            }
            .into(),
            created_at: now,
        };
        let seconds = |s: u32| chrono::Duration::seconds(i64::from(s));
        let limits = Limits {
            per_destination: i64::from(policy.per_destination_limit),
            destination_since: now - seconds(policy.per_destination_window_seconds),
            per_channel: i64::from(policy.per_channel_limit),
            channel_since: now - seconds(policy.per_channel_window_seconds),
        };
        let entry = challenge_audit(caller, &row, "challenge.create", "ok");
        match self
            .store
            .create_challenge(&row, message.as_ref(), &limits, &entry)?
        {
            Creation::Created(row) => {
                if message.is_some() {
                    self.outbox_ready.notify_one();
                }
                self.metrics
                    .challenges_created
                    .with_label_values(&[delivery.as_str()])
                    .inc();
                Ok(CreatedChallenge {
                    challenge: shown(*row, now),
                    otp: (delivery == Delivery::Response).then_some(code),
                })
            }
            Creation::RateLimited => Err(Error::RateLimited),
            Creation::BudgetSpent => Err(Error::BudgetSpent),
        }
    }

    /// The challenge `id` of the caller's channel.
    pub fn challenge(&self, caller: &Caller, id: Uuid) -> Result<Challenge, Error> {
        let row = self
            .store
            .challenge(caller.channel.id, id)?
            .ok_or(Error::NotFound(Missing::Challenge))?;
        Ok(shown(row, self.now()))
    }

    /// Verifies `otp` against the challenge `id`, from an async task (the HTTP workers): the
    /// challenge is read with other verifications' lookups, its code's MAC computed here, in
    /// the HSM, and the outcome awaited from the group commit.
    pub async fn verify_challenge(
        &self,
        caller: &Caller,
        id: Uuid,
        otp: &str,
    ) -> Result<Verdict, Error> {
        let row = self
            .store
            .challenge_async(caller.channel.id, id)
            .await?
            .ok_or(Error::NotFound(Missing::Challenge))?;
        let otp = Otp::parse(otp).map_err(|_| Error::InvalidOtp)?;
        let verdict = self.settle_challenge(caller, &row, &otp).await?;
        self.count_challenge(verdict);
        Ok(verdict)
    }

    /// Verifies `otp` against the newest challenge of `destination` (and `app`), from an async
    /// task, like [`Self::verify_challenge`].
    pub async fn verify_destination(
        &self,
        caller: &Caller,
        destination: &str,
        app: Option<&str>,
        otp: &str,
    ) -> Result<Verdict, Error> {
        let destination =
            normalise_destination(destination).ok_or(Error::InvalidRequest("destination"))?;
        let otp = Otp::parse(otp).map_err(|_| Error::InvalidOtp)?;
        let row = self
            .store
            .newest_challenge_async(caller.channel.id, &destination, app)
            .await?
            .ok_or(Error::NotFound(Missing::Challenge))?;
        let verdict = self.settle_challenge(caller, &row, &otp).await?;
        self.count_challenge(verdict);
        Ok(verdict)
    }

    /// Checks `otp` against a challenge and settles the outcome, from an async task.
    async fn settle_challenge(
        &self,
        caller: &Caller,
        row: &ChallengeRow,
        otp: &Otp,
    ) -> Result<Verdict, Error> {
        if let Some(verdict) = self.closed(row, otp)? {
            let entry = challenge_audit(caller, row, "challenge.verify", verdict.as_str());
            self.store.append_audit_async(&entry).await?;
            return Ok(verdict);
        }
        if self.challenge_matches(row, otp)? {
            return self.use_challenge_async(caller, row).await;
        }
        self.fail_challenge_async(caller, row).await?;
        Ok(Verdict::Reject)
    }

    /// [`Self::settle_challenge`] from a blocking thread, with a surface's own failure limit;
    /// also says whether this attempt locked the challenge.
    pub(super) fn settle_challenge_within(
        &self,
        caller: &Caller,
        row: &ChallengeRow,
        otp: &Otp,
        max_failures: u32,
    ) -> Result<(Verdict, bool), Error> {
        if let Some(verdict) = self.closed(row, otp)? {
            let entry = challenge_audit(caller, row, "challenge.verify", verdict.as_str());
            self.store.append_audit(&entry)?;
            return Ok((verdict, false));
        }
        if self.challenge_matches(row, otp)? {
            return Ok((self.use_challenge(caller, row)?, false));
        }
        let locked = self.fail_challenge_within(caller, row, max_failures)?;
        Ok((Verdict::Reject, locked))
    }

    /// The verdict of a challenge no code can use any more (used, locked or expired); an
    /// error if `otp` has not the challenge's length.
    fn closed(&self, row: &ChallengeRow, otp: &Otp) -> Result<Option<Verdict>, Error> {
        if otp.len() != usize::try_from(row.digits).unwrap_or(0) {
            return Err(Error::InvalidOtp);
        }
        Ok(match row.state.as_str() {
            "used" => Some(Verdict::Used),
            "locked" => Some(Verdict::Locked),
            _ if row.expires_at <= self.now() => Some(Verdict::Expired),
            _ => None,
        })
    }

    /// Uses a challenge whose code matched: the conditional update decides (single use).
    fn use_challenge(&self, caller: &Caller, row: &ChallengeRow) -> Result<Verdict, Error> {
        let entry = challenge_audit(caller, row, "challenge.verify", "accept");
        Ok(use_verdict(self.store.use_challenge(
            row.id,
            self.now(),
            entry,
        )?))
    }

    /// [`Self::use_challenge`] from an async task.
    pub(super) async fn use_challenge_async(
        &self,
        caller: &Caller,
        row: &ChallengeRow,
    ) -> Result<Verdict, Error> {
        let entry = challenge_audit(caller, row, "challenge.verify", "accept");
        let settled = self.store.use_challenge_async(row.id, self.now(), entry);
        Ok(use_verdict(settled.await?))
    }

    /// Whether `otp` is the code of `row` (HSM MAC, constant-time comparison).
    pub(super) fn challenge_matches(&self, row: &ChallengeRow, otp: &Otp) -> Result<bool, Error> {
        if row.mac_version != CHALLENGE_MAC_VERSION {
            return Err(Error::Internal("challenge MAC key version unknown".into()));
        }
        let mac = self.hsm.challenge_mac(row.id.as_bytes(), otp)?;
        Ok(mac.ct_eq(&row.code_mac).into())
    }

    /// Counts a wrong code on a challenge, locking it at `max_failures`; whether it is locked.
    fn fail_challenge_within(
        &self,
        caller: &Caller,
        row: &ChallengeRow,
        max_failures: u32,
    ) -> Result<bool, Error> {
        let (max, entry) = challenge_failure(caller, row, max_failures);
        Ok(self.store.fail_challenge(row.id, max, &entry)?)
    }

    /// Counts a wrong code on a challenge from an async task, locking it at the channel
    /// surfaces' limit.
    pub(super) async fn fail_challenge_async(
        &self,
        caller: &Caller,
        row: &ChallengeRow,
    ) -> Result<bool, Error> {
        let (max, entry) = challenge_failure(caller, row, self.challenge_policy.max_failures);
        Ok(self.store.fail_challenge_async(row.id, max, &entry).await?)
    }

    fn count_challenge(&self, verdict: Verdict) {
        self.metrics
            .verifications
            .with_label_values(&["challenge", verdict.as_str()])
            .inc();
    }

    /// Where the code goes: the named destination, or the user's entry.
    fn destination(
        &self,
        caller: &Caller,
        req: &ChallengeRequest,
        delivery: Delivery,
    ) -> Result<String, Error> {
        if let Some(user) = &req.user {
            if !super::token::valid_user(user) {
                return Err(Error::InvalidRequest("user"));
            }
        }
        if let Some(key) = &req.key {
            return key_destination(key);
        }
        if let Some(d) = &req.destination {
            let parsed = match delivery {
                Delivery::Sms | Delivery::Voice => {
                    E164Phone::parse(d).map(|p| p.as_str().to_owned())
                }
                Delivery::Email => Email::parse(d).map(|e| e.as_str().to_owned()),
                Delivery::Response => normalise_destination(d),
            };
            return parsed.ok_or(Error::InvalidRequest("destination"));
        }
        let user = req
            .user
            .as_deref()
            .ok_or(Error::InvalidRequest("destination"))?;
        let entry = self.store.user(caller.channel.id, user)?;
        let found = match (delivery, &entry) {
            (_, None) if delivery != Delivery::Response => {
                return Err(Error::NotFound(Missing::User))
            }
            (Delivery::Sms | Delivery::Voice, Some(e)) => e.phone.clone(),
            (Delivery::Email, Some(e)) => e.email.clone(),
            (_, Some(e)) => e.phone.clone().or_else(|| e.email.clone()),
            (_, None) => None,
        };
        Ok(match (found, delivery) {
            (Some(d), _) => d,
            (None, Delivery::Response) => format!("user:{user}"),
            (None, _) => return Err(Error::InvalidRequest("destination")),
        })
    }

    /// The current time, to the millisecond: challenge lifetimes, freezes and delivery
    /// retries. (Truncated to the second, a lifetime of `n` seconds would have been anything
    /// between `n - 1` and `n`.)
    pub fn now(&self) -> DateTime<Utc> {
        let ms = i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX);
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }
}

/// The destination recorded for a code bound to an opaque key.
pub(super) fn key_destination(key: &str) -> Result<String, Error> {
    if valid_label(key) && key.chars().count() <= 128 {
        Ok(format!("key:{key}"))
    } else {
        Err(Error::InvalidRequest("key"))
    }
}

/// A phone number (E.164) or an e-mail address, normalised.
fn normalise_destination(d: &str) -> Option<String> {
    if d.contains('@') {
        Email::parse(d).map(|e| e.as_str().to_owned())
    } else {
        E164Phone::parse(d).map(|p| p.as_str().to_owned())
    }
}

/// Application names: 1 to 64 printable characters (keys may be up to 128).
fn valid_label(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control)
}

fn shown(row: ChallengeRow, now: DateTime<Utc>) -> Challenge {
    let state = if row.state == "open" && row.expires_at <= now {
        "expired".to_owned()
    } else {
        row.state
    };
    Challenge {
        id: row.id,
        user: row.user_id,
        destination: row.destination,
        delivery: row.delivery,
        app: row.app,
        expires_at: row.expires_at,
        state,
        delivery_status: row.delivery_status,
        created_at: row.created_at,
    }
}

/// The verdict of a challenge whose code matched, from its conditional update.
fn use_verdict(settled: Settled) -> Verdict {
    match settled {
        Settled::Used => Verdict::Accept,
        Settled::AlreadyUsed => Verdict::Used,
        Settled::Locked => Verdict::Locked,
        Settled::Expired => Verdict::Expired,
    }
}

/// A wrong code counted on a challenge: the failure limit and the audit row.
fn challenge_failure(caller: &Caller, row: &ChallengeRow, max_failures: u32) -> (i32, AuditEntry) {
    let max = i32::try_from(max_failures).unwrap_or(i32::MAX);
    (
        max,
        challenge_audit(caller, row, "challenge.verify", "reject"),
    )
}

fn challenge_audit(caller: &Caller, row: &ChallengeRow, action: &str, result: &str) -> AuditEntry {
    let mut entry = audit(caller, None, action, result);
    entry.user_id = row.user_id.clone();
    entry.challenge_id = Some(row.id);
    entry
}
