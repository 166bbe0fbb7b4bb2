//! Use cases: the only code that combines the OATH core, the HSM and the store.
//!
//! Every function here is blocking (PKCS#11 and diesel both block); the API runs each call
//! on the blocking pool. Handlers of every API surface call these and only translate.

mod challenge;
mod channel;
mod error;
mod import;
mod keyed;
mod message;
mod outbox;
mod token;
mod user;
mod verify;

/// What a verification by user id tries: the user's tokens and open challenges.
pub use crate::store::Candidates;
pub use challenge::{Challenge, ChallengePolicy, ChallengeRequest, CreatedChallenge, Delivery};
pub use channel::{Caller, Channel, ChannelOptions, Credential, NewChannelKey};
pub use error::{Error, Missing};
pub use import::{is_record, ImportProgress, SeedFile};
pub use keyed::{Freezing, KeyedCode};
pub use message::LANGUAGES;
pub use outbox::PendingMessage;
pub use token::{Enrolled, Enrolment, SeedInput, Token};
pub use user::User;
pub use verify::Verdict;

use std::sync::Arc;

use crate::clock::Clock;
use crate::hsm::{Hsm, SeedStorage};
use crate::metrics::Metrics;
use crate::store::{AuditEntry, Store};

/// Verification policy (configurable; defaults from RFC 4226 section 7 and RFC 6238 section 5).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// HOTP look-ahead window.
    pub hotp_window: u32,
    /// TOTP steps accepted either side of now.
    pub totp_window: u32,
    /// HOTP look-ahead when resynchronising.
    pub hotp_resync_window: u32,
    /// TOTP steps searched either side of now when resynchronising.
    pub totp_resync_window: u32,
    /// Consecutive failures that lock a token.
    pub max_failures: u32,
    /// How new seeds are stored.
    pub seed_storage: SeedStorage,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hotp_window: 10,
            totp_window: 1,
            hotp_resync_window: 100,
            totp_resync_window: 10,
            max_failures: 5,
            seed_storage: SeedStorage::Wrapped,
        }
    }
}

/// Everything a use case needs.
#[derive(Clone, Debug)]
pub struct Services {
    hsm: Arc<Hsm>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    policy: Policy,
    challenge_policy: ChallengePolicy,
    outbox_ready: Arc<tokio::sync::Notify>,
}

impl Services {
    /// Assembles the services.
    pub fn new(
        hsm: Arc<Hsm>,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        policy: Policy,
        challenge_policy: ChallengePolicy,
    ) -> Self {
        Self {
            hsm,
            store,
            clock,
            metrics,
            policy,
            challenge_policy,
            outbox_ready: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Signalled whenever a message is queued (the delivery worker waits on it).
    pub fn outbox_ready(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// Finds or creates the HSM's long-lived keys. Only when one is missing (a fresh token)
    /// does it need the database: the processes that start at once on it take turns under a
    /// database lock, so the first creates the keys and the others find them.
    pub fn ensure_keys(&self) -> Result<(), Error> {
        if self.hsm.has_keys()? {
            return Ok(());
        }
        Ok(self
            .store
            .exclusively("hsm-otp: create the HSM's service keys", || {
                self.hsm.ensure_keys()
            })??)
    }

    /// Proves that seeds can be stored and used in the configured storage mode.
    pub fn self_test(&self) -> Result<(), crate::hsm::HsmError> {
        self.hsm.self_test(self.policy.seed_storage)
    }

    /// In object storage, finds every seed object once, so that verifications never search
    /// the token; returns how many there are (0 in wrapped storage, which has none).
    pub fn index_seed_objects(&self) -> Result<usize, crate::hsm::HsmError> {
        match self.policy.seed_storage {
            SeedStorage::Object => self.hsm.index_seed_objects(),
            SeedStorage::Wrapped => Ok(0),
        }
    }

    /// Readiness: an HSM session and a database connection can be had and answer.
    pub fn ready(&self) -> Result<(), Error> {
        self.hsm.ping()?;
        self.store.ping()?;
        Ok(())
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Refreshes the pool gauges.
    pub fn update_pool_gauges(&self) {
        let (idle, busy) = self.hsm.pool_usage();
        self.metrics.set_pool("hsm", idle, busy);
        let (idle, busy) = self.store.pool_usage();
        self.metrics.set_pool("database", idle, busy);
    }
}

/// An audit row for an action of `caller` on a token.
fn audit(caller: &Caller, token: Option<&Token>, action: &str, result: &str) -> AuditEntry {
    AuditEntry {
        channel_id: Some(caller.channel.id),
        token_id: token.map(|t| t.id),
        user_id: token.map(|t| t.user.clone()),
        action: action.to_owned(),
        result: result.to_owned(),
        moving_factor: None,
        request_id: Some(caller.request_id.clone()),
        challenge_id: None,
    }
}
