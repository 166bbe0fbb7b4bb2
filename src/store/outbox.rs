//! The outbox: messages waiting for delivery, claimed by any node's worker with
//! `FOR UPDATE SKIP LOCKED`, and erased once delivered, failed for good or expired.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Timestamptz};
use uuid::Uuid;

use super::schema::{challenges, outbox};
use super::{Store, StoreError};

/// A claimed message.
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    /// Sequence number.
    pub id: i64,
    /// The challenge whose code it carries.
    pub challenge_id: Uuid,
    /// `sms`, `email` or `voice`.
    pub kind: String,
    /// Where to.
    pub destination: String,
    /// Sealed text (absent once done).
    pub sealed_message: Option<Vec<u8>>,
    /// Sealing key version.
    pub key_version: i32,
    /// Which gateway of the kind's list to use next.
    pub gateway_index: i32,
    /// Attempts so far.
    pub attempts: i32,
    /// When the challenge (and so the message) expires.
    pub expires_at: DateTime<Utc>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// What happened to one delivery attempt.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// Delivered through this gateway.
    Sent {
        /// The gateway's name.
        gateway: String,
    },
    /// Try again at `at`, with gateway `gateway_index`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Which gateway.
        gateway_index: i32,
        /// Why the last attempt failed (no message text, no code).
        error: String,
    },
    /// Give up: no gateway can deliver it.
    Failed {
        /// Why.
        error: String,
    },
}

impl Store {
    /// Claims up to `limit` due messages for `lease` (another worker may claim them again
    /// after that, should this one die mid-send).
    pub fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.run("outbox_claim", |c| {
            Ok(diesel::sql_query(
                "UPDATE outbox SET next_attempt_at = $2 WHERE id IN ( \
                   SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, challenge_id, kind, destination, sealed_message, key_version, \
                   gateway_index, attempts, expires_at, created_at",
            )
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(now + lease)
            .bind::<Integer, _>(limit)
            .load(c)?)
        })
    }

    /// Records an attempt's outcome; a delivered or failed message is erased.
    pub fn record_attempt(&self, row: &OutboxRow, attempt: &Attempt) -> Result<(), StoreError> {
        self.transaction("outbox_record", |c| {
            let target = outbox::table.find(row.id);
            let status = match attempt {
                Attempt::Sent { gateway } => {
                    diesel::update(target)
                        .set((
                            outbox::status.eq("sent"),
                            outbox::sealed_message.eq(None::<Vec<u8>>),
                            outbox::attempts.eq(row.attempts + 1),
                            outbox::sent_via.eq(gateway),
                            outbox::finished_at.eq(diesel::dsl::now),
                        ))
                        .execute(c)?;
                    Some("sent")
                }
                Attempt::Retry {
                    at,
                    gateway_index,
                    error,
                } => {
                    diesel::update(target)
                        .set((
                            outbox::attempts.eq(row.attempts + 1),
                            outbox::gateway_index.eq(gateway_index),
                            outbox::next_attempt_at.eq(at),
                            outbox::last_error.eq(error),
                        ))
                        .execute(c)?;
                    None
                }
                Attempt::Failed { error } => {
                    diesel::update(target)
                        .set((
                            outbox::status.eq("failed"),
                            outbox::sealed_message.eq(None::<Vec<u8>>),
                            outbox::attempts.eq(row.attempts + 1),
                            outbox::last_error.eq(error),
                            outbox::finished_at.eq(diesel::dsl::now),
                        ))
                        .execute(c)?;
                    Some("failed")
                }
            };
            if let Some(status) = status {
                diesel::update(challenges::table.find(row.challenge_id))
                    .set(challenges::delivery_status.eq(status))
                    .execute(c)?;
            }
            Ok(())
        })
    }

    /// Erases every pending message whose challenge has expired at `now`.
    pub fn expire_messages(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.transaction("outbox_expire", |c| {
            let expired: Vec<Uuid> = diesel::update(
                outbox::table
                    .filter(outbox::status.eq("pending"))
                    .filter(outbox::expires_at.le(now)),
            )
            .set((
                outbox::status.eq("expired"),
                outbox::sealed_message.eq(None::<Vec<u8>>),
                outbox::finished_at.eq(diesel::dsl::now),
            ))
            .returning(outbox::challenge_id)
            .get_results(c)?;
            diesel::update(challenges::table.filter(challenges::id.eq_any(&expired)))
                .set(challenges::delivery_status.eq("expired"))
                .execute(c)?;
            Ok(expired.len())
        })
    }

    /// Pending messages and the age of the oldest, in seconds.
    pub fn outbox_backlog(&self, now: DateTime<Utc>) -> Result<(i64, f64), StoreError> {
        self.run("outbox_backlog", |c| {
            let (count, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
                .filter(outbox::status.eq("pending"))
                .select((
                    diesel::dsl::count_star(),
                    diesel::dsl::min(outbox::created_at),
                ))
                .first(c)?;
            let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            Ok((count, age))
        })
    }
}
