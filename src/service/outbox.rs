//! The outbox as the delivery worker sees it: claim due messages (opened in the HSM), record
//! each attempt, expire what can no longer be delivered, and report the backlog.

use serde::Deserialize;

use super::{Error, Services};
use crate::domain::SecretString;
use crate::store::{Attempt, OutboxRow};

/// Messages claimed per round.
const BATCH: i32 = 16;
/// How long a claim holds before another worker may take the message over.
const LEASE_SECONDS: i64 = 60;

/// A message ready to send: the row and its opened text. The text contains the code.
#[derive(Debug)]
pub struct PendingMessage {
    /// The outbox row.
    pub row: OutboxRow,
    /// E-mail subject.
    pub subject: String,
    /// The text.
    pub text: SecretString,
}

#[derive(Deserialize)]
struct Sealed {
    subject: String,
    text: SecretString,
}

impl Services {
    /// Claims due messages; those that cannot be opened are recorded as failed.
    pub fn claim_messages(&self) -> Result<Vec<PendingMessage>, Error> {
        let now = self.now();
        let rows =
            self.store
                .claim_messages(now, chrono::Duration::seconds(LEASE_SECONDS), BATCH)?;
        let mut ready = Vec::with_capacity(rows.len());
        for row in rows {
            match self.open_message(&row) {
                Ok(sealed) => ready.push(PendingMessage {
                    row,
                    subject: sealed.subject,
                    text: sealed.text,
                }),
                Err(Error::HsmUnavailable(e)) => return Err(Error::HsmUnavailable(e)),
                Err(e) => {
                    tracing::error!(outbox_id = row.id, error = %e, "cannot open a queued message");
                    let failed = Attempt::Failed {
                        error: "message could not be opened".into(),
                    };
                    self.store.record_attempt(&row, &failed)?;
                }
            }
        }
        Ok(ready)
    }

    /// Records how an attempt went.
    pub fn record_attempt(&self, row: &OutboxRow, attempt: &Attempt) -> Result<(), Error> {
        Ok(self.store.record_attempt(row, attempt)?)
    }

    /// Erases the messages of expired challenges.
    pub fn expire_messages(&self) -> Result<usize, Error> {
        Ok(self.store.expire_messages(self.now())?)
    }

    /// Updates the outbox gauges (depth and age of the oldest pending message).
    pub fn refresh_outbox_gauges(&self) -> Result<(), Error> {
        let (depth, oldest) = self.store.outbox_backlog(self.now())?;
        self.metrics.outbox_depth.set(depth);
        self.metrics.outbox_oldest_age.set(oldest);
        Ok(())
    }

    /// Counts one delivery attempt by gateway and outcome.
    pub fn count_delivery(&self, gateway: &str, outcome: &'static str) {
        self.metrics
            .deliveries
            .with_label_values(&[gateway, outcome])
            .inc();
    }

    fn open_message(&self, row: &OutboxRow) -> Result<Sealed, Error> {
        let sealed = row
            .sealed_message
            .as_deref()
            .ok_or_else(|| Error::Internal("pending message without text".into()))?;
        if row.key_version != crate::hsm::OUTBOX_KEY_VERSION {
            return Err(Error::Internal("outbox key version unknown".into()));
        }
        let plain = self.hsm.open(sealed, row.challenge_id.as_bytes())?;
        serde_json::from_slice(plain.expose())
            .map_err(|_| Error::Internal("bad sealed message".into()))
    }
}
