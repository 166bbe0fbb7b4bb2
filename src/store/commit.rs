//! Group commit: the outcomes of concurrent verifications settled together, in one
//! transaction, each caller answered only once that transaction has committed.
//!
//! A caller queues its operation (a token's advance or failures, a challenge's use or
//! failure, an audit row) and waits; the commit group's runner (`group`) takes everything
//! queued as one batch. Every operation keeps its own conditional `UPDATE` semantics
//! (promise 4) and its own audit rows in the same transaction (promise 7): a batch never
//! holds two operations on the same token or challenge, so each sees the state the previous
//! batch committed. A batch that fails for a reason other than a lost database is retried one
//! operation at a time, so one bad operation cannot fail its neighbours.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Untyped};
use uuid::Uuid;

use super::audit::AuditEntry;
use super::batch::{Batch, Statement};
use super::challenges::{fail_one, use_one, Settled as ChallengeSettled};
use super::group::Job;
use super::schema::tokens;
use super::{Advance, Failure, Store, StoreError};

/// Audit rows per `INSERT` (nine bind parameters each, well under PostgreSQL's 65,535).
const AUDIT_CHUNK: usize = 1_000;

/// One state change that settles (part of) a verification.
#[derive(Clone, Debug)]
pub(super) enum Op {
    /// Move the token's factor past `factor` if nobody used it and the token is unlocked.
    Advance {
        token_id: Uuid,
        factor: i64,
        drift: Option<i32>,
        entry: AuditEntry,
    },
    /// Count one failure on each token; lock those that reach `max_failures`.
    Failures {
        token_ids: Vec<Uuid>,
        max_failures: i32,
        entry: AuditEntry,
    },
    /// Mark the challenge used if it is open and unexpired at `now` (single use).
    UseChallenge {
        id: Uuid,
        now: DateTime<Utc>,
        entry: AuditEntry,
    },
    /// Count one wrong code on the challenge; lock it at `max_failures`.
    FailChallenge {
        id: Uuid,
        max_failures: i32,
        entry: AuditEntry,
    },
    /// Only an audit row (a verification that changed no state).
    Audit(AuditEntry),
}

/// How an operation was settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Advance(Advance),
    Failures(Vec<Failure>),
    ChallengeUse(ChallengeSettled),
    /// Whether the challenge is now locked.
    ChallengeFailure(bool),
    Audit,
}

type Settlement = Result<Outcome, StoreError>;

impl Job for Op {
    type Output = Outcome;

    fn rows(&self) -> &[Uuid] {
        match self {
            Self::Advance { token_id, .. } => std::slice::from_ref(token_id),
            Self::Failures { token_ids, .. } => token_ids,
            Self::UseChallenge { id, .. } | Self::FailChallenge { id, .. } => {
                std::slice::from_ref(id)
            }
            Self::Audit(_) => &[],
        }
    }

    fn run(store: &Store, ops: &[&Self]) -> Vec<Settlement> {
        store.settle(ops)
    }
}

impl Store {
    /// Commits `ops` in one transaction; on a failure other than a lost database, each on
    /// its own.
    fn settle(&self, ops: &[&Op]) -> Vec<Settlement> {
        self.metrics.commit_batch_size.observe(ops.len() as f64);
        match self.transaction("settle_batch", |c| settle(c, ops)) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) if ops.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                ops.iter().map(|_| Err(e.clone())).collect()
            }
            Err(_) => ops
                .iter()
                .map(|op| {
                    self.transaction("settle_one", |c| settle(c, &[op]))?
                        .pop()
                        .ok_or_else(|| StoreError::Internal("batch without a result".into()))
                })
                .collect(),
        }
    }

    /// Queues `op` for the next group commit and waits until it has committed.
    pub(super) fn submit(&self, op: Op) -> Settlement {
        self.commits.submit(self, op)
    }

    /// [`Self::submit`] for an async task: awaits the commit without a blocking thread.
    pub(super) async fn submit_async(&self, op: Op) -> Settlement {
        self.commits.submit_async(self, op).await
    }
}

/// The answer of a group commit that settled an operation of another kind than its caller's.
pub(super) fn mismatch() -> StoreError {
    StoreError::Internal("group commit answered another operation".into())
}

#[derive(QueryableByName)]
struct Advanced {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Every advance of the batch in one conditional `UPDATE`: a token moves only if the factor
/// is still unused and it is unlocked (promise 4). Ids are distinct within a batch.
#[derive(Default)]
struct AdvanceAll;

impl Statement for AdvanceAll {
    type SqlType = Untyped;

    const SQL: &'static str = "UPDATE tokens AS t \
             SET next_factor = i.factor + 1, drift = coalesce(i.drift, t.drift), \
                 failure_count = 0 \
             FROM jsonb_to_recordset($1) AS i(id uuid, factor bigint, drift int) \
             WHERE t.id = i.id AND t.next_factor <= i.factor AND t.locked_at IS NULL \
             RETURNING t.id";
}

/// An element of [`AdvanceAll`]'s batch.
#[derive(serde::Serialize)]
struct ToAdvance {
    id: Uuid,
    factor: i64,
    drift: Option<i32>,
}

/// Every failure of the batch in one `UPDATE`: counted atomically, locked at the limit
/// (promise 5). A locked (or deleted) token is not returned.
#[derive(Default)]
struct CountAll;

impl Statement for CountAll {
    type SqlType = Untyped;

    const SQL: &'static str = "UPDATE tokens AS t \
             SET failure_count = t.failure_count + 1, \
                 locked_at = CASE WHEN t.failure_count + 1 >= i.max_failures THEN now() END \
             FROM jsonb_to_recordset($1) AS i(id uuid, max_failures int) \
             WHERE t.id = i.id AND t.locked_at IS NULL \
             RETURNING t.id, t.locked_at IS NOT NULL AS locked";
}

/// An element of [`CountAll`]'s batch.
#[derive(serde::Serialize)]
struct ToCount {
    id: Uuid,
    max_failures: i32,
}

/// The batch's statements, in one transaction: advances, failures, challenges, then every
/// audit row.
fn settle(c: &mut PgConnection, ops: &[&Op]) -> QueryResult<Vec<Outcome>> {
    let mut audit = Vec::new();
    let advances = settle_advances(c, ops, &mut audit)?;
    let failures = settle_failures(c, ops, &mut audit)?;
    let mut challenges = settle_challenges(c, ops, &mut audit)?;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        outcomes.push(match op {
            Op::Advance { token_id, .. } => Outcome::Advance(
                advances
                    .get(token_id)
                    .copied()
                    .ok_or(diesel::result::Error::NotFound)?,
            ),
            Op::Failures { token_ids, .. } => Outcome::Failures(
                token_ids
                    .iter()
                    .map(|id| failures.get(id).copied().unwrap_or(Failure::Locked))
                    .collect(),
            ),
            Op::UseChallenge { id, .. } | Op::FailChallenge { id, .. } => challenges
                .remove(id)
                .ok_or(diesel::result::Error::NotFound)?,
            Op::Audit(entry) => {
                audit.push(entry.clone());
                Outcome::Audit
            }
        });
    }
    for chunk in audit.chunks(AUDIT_CHUNK) {
        super::audit::append_many(c, chunk)?;
    }
    Ok(outcomes)
}

fn settle_advances(
    c: &mut PgConnection,
    ops: &[&Op],
    audit: &mut Vec<AuditEntry>,
) -> QueryResult<HashMap<Uuid, Advance>> {
    let mut rows: Vec<(Uuid, i64, Option<i32>, &AuditEntry)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Advance {
                token_id,
                factor,
                drift,
                entry,
            } => Some((*token_id, *factor, *drift, entry)),
            _ => None,
        })
        .collect();
    let mut settled = HashMap::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(settled);
    }
    // One lock order for every batch, whichever process runs it.
    rows.sort_by_key(|r| r.0);
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let batch: Vec<ToAdvance> = rows
        .iter()
        .map(|&(id, factor, drift, _)| ToAdvance { id, factor, drift })
        .collect();
    let advanced: HashSet<Uuid> = Batch::<AdvanceAll>::new(&batch)?
        .load::<Advanced>(c)?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let missed: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !advanced.contains(id))
        .collect();
    let locked: HashMap<Uuid, bool> = if missed.is_empty() {
        HashMap::new()
    } else {
        tokens::table
            .filter(tokens::id.eq_any(&missed))
            .select((tokens::id, tokens::locked_at.is_not_null()))
            .load::<(Uuid, bool)>(c)?
            .into_iter()
            .collect()
    };
    for (id, factor, _, entry) in rows {
        let outcome = if advanced.contains(&id) {
            Advance::Done
        } else {
            match locked.get(&id) {
                None => Advance::Gone,
                Some(true) => Advance::Locked,
                Some(false) => Advance::Replay,
            }
        };
        let mut entry = entry.clone();
        match outcome {
            Advance::Done => {}
            Advance::Locked => entry.result = "locked".to_owned(),
            Advance::Replay | Advance::Gone => entry.result = "replay".to_owned(),
        }
        entry.moving_factor = Some(factor);
        audit.push(entry);
        settled.insert(id, outcome);
    }
    Ok(settled)
}

/// Each challenge's use or failure, one statement each, in the order of their ids (one lock
/// order for every batch, whichever process runs it). Ids are distinct within a batch.
fn settle_challenges(
    c: &mut PgConnection,
    ops: &[&Op],
    audit: &mut Vec<AuditEntry>,
) -> QueryResult<HashMap<Uuid, Outcome>> {
    let mut ops: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| matches!(op, Op::UseChallenge { .. } | Op::FailChallenge { .. }))
        .collect();
    ops.sort_by_key(|op| op.rows().first().copied());
    let mut settled = HashMap::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::UseChallenge { id, now, entry } => {
                let outcome = use_one(c, *id, *now)?;
                let mut entry = entry.clone();
                if outcome != ChallengeSettled::Used {
                    entry.result = outcome.as_str().to_owned();
                }
                audit.push(entry);
                settled.insert(*id, Outcome::ChallengeUse(outcome));
            }
            Op::FailChallenge {
                id,
                max_failures,
                entry,
            } => {
                let locked = fail_one(c, *id, *max_failures)?;
                audit.push(entry.clone());
                settled.insert(*id, Outcome::ChallengeFailure(locked));
            }
            _ => {}
        }
    }
    Ok(settled)
}

fn settle_failures(
    c: &mut PgConnection,
    ops: &[&Op],
    audit: &mut Vec<AuditEntry>,
) -> QueryResult<HashMap<Uuid, Failure>> {
    let mut rows: Vec<(Uuid, i32, &AuditEntry)> = ops
        .iter()
        .flat_map(|op| match op {
            Op::Failures {
                token_ids,
                max_failures,
                entry,
            } => token_ids
                .iter()
                .map(|id| (*id, *max_failures, entry))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    let mut settled = HashMap::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(settled);
    }
    rows.sort_by_key(|r| r.0);
    let batch: Vec<ToCount> = rows
        .iter()
        .map(|&(id, max_failures, _)| ToCount { id, max_failures })
        .collect();
    let counted: HashMap<Uuid, bool> = Batch::<CountAll>::new(&batch)?
        .load::<Counted>(c)?
        .into_iter()
        .map(|r| (r.id, r.locked))
        .collect();
    for (id, _, entry) in rows {
        let outcome = match counted.get(&id) {
            None => Failure::Locked,
            Some(true) => Failure::NowLocked,
            Some(false) => Failure::Counted,
        };
        let mut row = entry.clone();
        row.token_id = Some(id);
        if outcome == Failure::Locked {
            row.result = "locked".to_owned();
        }
        audit.push(row.clone());
        if outcome == Failure::NowLocked {
            row.action = "lock".to_owned();
            row.result = "ok".to_owned();
            audit.push(row);
        }
        settled.insert(id, outcome);
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::super::group::{take_batch, MAX_BATCH};
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            channel_id: None,
            token_id: None,
            user_id: None,
            action: "verify".into(),
            result: "accept".into(),
            moving_factor: None,
            request_id: None,
            challenge_id: None,
        }
    }

    fn advance(token_id: Uuid) -> Op {
        Op::Advance {
            token_id,
            factor: 0,
            drift: None,
            entry: entry(),
        }
    }

    #[test]
    fn a_batch_never_holds_two_operations_on_one_token() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut queued = vec![
            (0, advance(a)),
            (1, advance(a)),
            (2, Op::Audit(entry())),
            (
                3,
                Op::Failures {
                    token_ids: vec![b, a],
                    max_failures: 5,
                    entry: entry(),
                },
            ),
            (4, advance(b)),
            (5, advance(c)),
        ];
        let ids = |v: &[(u64, Op)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        let first = take_batch(&mut queued);
        assert_eq!(
            ids(&first),
            [0, 2, 4, 5],
            "arrival order, conflicts left queued"
        );
        assert_eq!(ids(&queued), [1, 3]);
        let second = take_batch(&mut queued);
        assert_eq!(ids(&second), [1], "the failure still touches token a");
        assert_eq!(ids(&take_batch(&mut queued)), [3]);
        assert!(queued.is_empty());
    }

    #[test]
    fn a_batch_is_bounded() {
        let mut queued: Vec<(u64, Op)> = (0..MAX_BATCH as u64 + 10)
            .map(|n| (n, advance(Uuid::new_v4())))
            .collect();
        assert_eq!(take_batch(&mut queued).len(), MAX_BATCH);
        assert_eq!(queued.len(), 10);
    }
}
