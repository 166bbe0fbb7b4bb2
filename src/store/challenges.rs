//! Challenges: creation under rate limits and budget, and the transactions that settle a
//! verification (single use, failure counting, lock; promises 3, 5 and 7).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::batch::{self, Batch, Statement};
use super::commit::{mismatch, Op, Outcome};
use super::group::{each, Job};
use super::schema::{challenge_counts, challenges, channels, outbox};
use super::{Store, StoreError};

/// A challenge as stored: never the code, only its MAC.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = challenges)]
pub struct ChallengeRow {
    /// Identifier.
    pub id: Uuid,
    /// Owning channel.
    pub channel_id: Uuid,
    /// The user it was sent for, if any.
    pub user_id: Option<String>,
    /// Normalised phone number or e-mail address (or `user:ID` for a returned code).
    pub destination: String,
    /// `sms`, `email`, `voice` or `response`.
    pub delivery: String,
    /// The application named in the message.
    pub app: Option<String>,
    /// HMAC over (id, code) under the HSM's challenge MAC key.
    pub code_mac: Vec<u8>,
    /// Version of that key.
    pub mac_version: i32,
    /// Code length.
    pub digits: i16,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes so far.
    pub failure_count: i32,
    /// `open`, `used` or `locked`.
    pub state: String,
    /// `pending`, `sent`, `failed`, `expired` or `returned`.
    pub delivery_status: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A message to queue with a challenge.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// `sms`, `email` or `voice`.
    pub kind: String,
    /// Where to.
    pub destination: String,
    /// The AES-GCM-sealed text.
    pub sealed: Vec<u8>,
    /// Version of the sealing key.
    pub key_version: i32,
}

/// Limits checked when a challenge is created.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// At most this many challenges per destination since `destination_since`.
    pub per_destination: i64,
    /// Start of the destination window.
    pub destination_since: DateTime<Utc>,
    /// At most this many challenges per channel since `channel_since`.
    pub per_channel: i64,
    /// Start of the channel window.
    pub channel_since: DateTime<Utc>,
}

/// How a creation ended.
#[derive(Clone, Debug)]
pub enum Creation {
    /// Created (and its message queued).
    Created(Box<ChallengeRow>),
    /// A rate limit is reached.
    RateLimited,
    /// The channel's message budget is spent.
    BudgetSpent,
}

/// The longest window a limit may have (the configuration's bound): an interval that ended
/// longer ago than this counts against no limit.
const LONGEST_WINDOW: chrono::Duration = chrono::Duration::days(1);

/// The end of the interval `at` falls in, for a channel window of `window`: intervals are a
/// 600th of the window, at least a second, aligned on the epoch.
fn counted(at: DateTime<Utc>, window: chrono::Duration) -> DateTime<Utc> {
    let width = (window.num_seconds() / 600).max(1);
    let end = (at.timestamp().div_euclid(width) + 1) * width;
    DateTime::from_timestamp(end, 0).unwrap_or(at)
}

/// Counts `new` in its channel's interval; the first creation in an interval also drops the
/// channel's intervals older than any window.
fn count(c: &mut PgConnection, new: &ChallengeRow, limits: &Limits) -> QueryResult<()> {
    let ends_at = counted(new.created_at, new.created_at - limits.channel_since);
    let created: i32 = diesel::insert_into(challenge_counts::table)
        .values((
            challenge_counts::channel_id.eq(new.channel_id),
            challenge_counts::ends_at.eq(ends_at),
            challenge_counts::created.eq(1),
        ))
        .on_conflict((challenge_counts::channel_id, challenge_counts::ends_at))
        .do_update()
        .set(challenge_counts::created.eq(challenge_counts::created + 1))
        .returning(challenge_counts::created)
        .get_result(c)?;
    if created == 1 {
        diesel::delete(
            challenge_counts::table
                .filter(challenge_counts::channel_id.eq(new.channel_id))
                .filter(challenge_counts::ends_at.lt(new.created_at - LONGEST_WINDOW)),
        )
        .execute(c)?;
    }
    Ok(())
}

/// How a proposed use of a challenge ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Used now, by this request only.
    Used,
    /// Already used.
    AlreadyUsed,
    /// Locked by failures.
    Locked,
    /// Expired.
    Expired,
}

/// One lookup of a channel's challenge, by id or the newest for a destination (and app), to
/// be done with others in one statement: a verification's read.
pub(super) struct ChallengeRead {
    channel: Uuid,
    by: By,
}

enum By {
    Id(Uuid),
    Destination(String, Option<String>),
}

/// A lookup as the statement takes it, with its place in the batch.
#[derive(serde::Serialize)]
struct Lookup<'a> {
    n: i32,
    channel: Uuid,
    id: Option<Uuid>,
    destination: Option<&'a str>,
    app: Option<&'a str>,
}

/// Each lookup's challenge: an index probe by id, or the newest of `challenges_destination`.
struct ChallengesFound {
    columns: AsSelect<ChallengeRow, Pg>,
}

impl Default for ChallengesFound {
    fn default() -> Self {
        Self {
            columns: ChallengeRow::as_select(),
        }
    }
}

impl Statement for ChallengesFound {
    type SqlType = (
        diesel::sql_types::Integer,
        SqlTypeOf<AsSelect<ChallengeRow, Pg>>,
    );

    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
        out.push_sql("SELECT r.n, ");
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(" FROM jsonb_to_recordset(");
        batch::bind_batch(out.reborrow(), batch)?;
        out.push_sql(
            ") AS r(n int, channel uuid, id uuid, destination text, app text) \
             JOIN LATERAL ( \
                 (SELECT * FROM challenges \
                     WHERE challenges.id = r.id AND challenges.channel_id = r.channel) \
                 UNION ALL \
                 (SELECT * FROM challenges WHERE r.id IS NULL \
                     AND challenges.channel_id = r.channel \
                     AND challenges.destination = r.destination \
                     AND (r.app IS NULL OR challenges.app = r.app) \
                     ORDER BY challenges.created_at DESC LIMIT 1)) AS challenges ON true",
        );
        Ok(())
    }
}

impl Job for ChallengeRead {
    type Output = Option<ChallengeRow>;

    fn rows(&self) -> &[Uuid] {
        &[] // a read changes nothing
    }

    fn run(store: &Store, reads: &[&Self]) -> Vec<Result<Option<ChallengeRow>, StoreError>> {
        let lookups: Vec<Lookup<'_>> = reads
            .iter()
            .enumerate()
            .map(|(n, read)| {
                let (id, destination, app) = match &read.by {
                    By::Id(id) => (Some(*id), None, None),
                    By::Destination(d, app) => (None, Some(d.as_str()), app.as_deref()),
                };
                Lookup {
                    n: i32::try_from(n).unwrap_or(i32::MAX),
                    channel: read.channel,
                    id,
                    destination,
                    app,
                }
            })
            .collect();
        let found = store.run("challenge_get_many", |c| {
            let rows = Batch::<ChallengesFound>::new(&lookups)?.load::<(i32, ChallengeRow)>(c)?;
            let mut by_n: HashMap<i32, ChallengeRow> = rows.into_iter().collect();
            Ok(lookups.iter().map(|l| by_n.remove(&l.n)).collect())
        });
        each(reads.len(), found)
    }
}

impl Store {
    /// [`Self::challenge`] for an async task: read with the other verifications' lookups
    /// that are ready, awaited without a blocking thread.
    pub async fn challenge_async(
        &self,
        channel_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        let read = ChallengeRead {
            channel: channel_id,
            by: By::Id(id),
        };
        self.challenge_reads.submit_async(self, read).await
    }

    /// [`Self::newest_challenge`] for an async task, like [`Self::challenge_async`].
    pub async fn newest_challenge_async(
        &self,
        channel_id: Uuid,
        destination: &str,
        app: Option<&str>,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        let read = ChallengeRead {
            channel: channel_id,
            by: By::Destination(destination.to_owned(), app.map(str::to_owned)),
        };
        self.challenge_reads.submit_async(self, read).await
    }
}

impl Store {
    /// Creates a challenge, queues its message, spends one unit of the channel's budget for
    /// a message, and writes the audit row — unless a limit says no. The channel's row is
    /// locked first, so creations in one channel take turns, on every node: both counts and
    /// the budget are exact under concurrent requests.
    ///
    /// The per-destination count reads the destination's challenges in its window (no more
    /// than its limit). The per-channel count sums the channel's counted intervals, a
    /// fixed number of rows whatever the channel's rate.
    pub fn create_challenge(
        &self,
        new: &ChallengeRow,
        message: Option<&NewMessage>,
        limits: &Limits,
        entry: &AuditEntry,
    ) -> Result<Creation, StoreError> {
        self.transaction("challenge_create", |c| {
            let budget: Option<i64> = channels::table
                .find(new.channel_id)
                .select(channels::message_budget)
                .for_no_key_update()
                .first(c)?;
            let same_destination: i64 = challenges::table
                .filter(challenges::channel_id.eq(new.channel_id))
                .filter(challenges::destination.eq(&new.destination))
                .filter(challenges::created_at.gt(limits.destination_since))
                .count()
                .get_result(c)?;
            let same_channel: Option<i64> = challenge_counts::table
                .filter(challenge_counts::channel_id.eq(new.channel_id))
                .filter(challenge_counts::ends_at.gt(limits.channel_since))
                .select(diesel::dsl::sum(challenge_counts::created))
                .get_result(c)?;
            if same_destination >= limits.per_destination
                || same_channel.unwrap_or(0) >= limits.per_channel
            {
                return Ok(Creation::RateLimited);
            }
            if let (Some(_), Some(left)) = (message, budget) {
                if left <= 0 {
                    return Ok(Creation::BudgetSpent);
                }
                diesel::update(channels::table.find(new.channel_id))
                    .set(channels::message_budget.eq(left - 1))
                    .execute(c)?;
            }
            count(c, new, limits)?;
            let row = diesel::insert_into(challenges::table)
                .values(new)
                .returning(ChallengeRow::as_returning())
                .get_result(c)?;
            if let Some(m) = message {
                diesel::insert_into(outbox::table)
                    .values((
                        outbox::challenge_id.eq(row.id),
                        outbox::kind.eq(&m.kind),
                        outbox::destination.eq(&m.destination),
                        outbox::sealed_message.eq(&m.sealed),
                        outbox::key_version.eq(m.key_version),
                        outbox::expires_at.eq(row.expires_at),
                    ))
                    .execute(c)?;
            }
            audit::append(c, entry)?;
            Ok(Creation::Created(Box::new(row)))
        })
    }

    /// The challenge `id` of `channel_id`.
    pub fn challenge(
        &self,
        channel_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        self.run("challenge_get", |c| {
            Ok(challenges::table
                .filter(
                    challenges::id
                        .eq(id)
                        .and(challenges::channel_id.eq(channel_id)),
                )
                .select(ChallengeRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    /// The newest challenge for `destination` (and `app`, when given) in `channel_id`.
    pub fn newest_challenge(
        &self,
        channel_id: Uuid,
        destination: &str,
        app: Option<&str>,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        self.run("challenge_newest", |c| {
            let mut query = challenges::table
                .filter(challenges::channel_id.eq(channel_id))
                .filter(challenges::destination.eq(destination))
                .into_boxed();
            if let Some(app) = app {
                query = query.filter(challenges::app.eq(app));
            }
            Ok(query
                .order(challenges::created_at.desc())
                .select(ChallengeRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    /// Marks the challenge used if it is open and unexpired at `now`; the row count decides,
    /// so a code is accepted once however many requests race. Records `entry` with the result,
    /// in the same transaction: a group commit with whatever other verifications are ready,
    /// answered only once it has committed.
    pub fn use_challenge(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        entry: AuditEntry,
    ) -> Result<Settled, StoreError> {
        used(self.submit(Op::UseChallenge { id, now, entry }))
    }

    /// [`Self::use_challenge`] for an async task.
    pub async fn use_challenge_async(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        entry: AuditEntry,
    ) -> Result<Settled, StoreError> {
        used(self.submit_async(Op::UseChallenge { id, now, entry }).await)
    }

    /// Counts a wrong code; locks the challenge at `max_failures`. Returns whether it is now
    /// locked (or already was). Committed with the next group, with `entry`.
    pub fn fail_challenge(
        &self,
        id: Uuid,
        max_failures: i32,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        failed(self.submit(fail(id, max_failures, entry)))
    }

    /// [`Self::fail_challenge`] for an async task.
    pub async fn fail_challenge_async(
        &self,
        id: Uuid,
        max_failures: i32,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        failed(self.submit_async(fail(id, max_failures, entry)).await)
    }
}

fn fail(id: Uuid, max_failures: i32, entry: &AuditEntry) -> Op {
    Op::FailChallenge {
        id,
        max_failures,
        entry: entry.clone(),
    }
}

fn used(settled: Result<Outcome, StoreError>) -> Result<Settled, StoreError> {
    match settled? {
        Outcome::ChallengeUse(s) => Ok(s),
        _ => Err(mismatch()),
    }
}

fn failed(settled: Result<Outcome, StoreError>) -> Result<bool, StoreError> {
    match settled? {
        Outcome::ChallengeFailure(locked) => Ok(locked),
        _ => Err(mismatch()),
    }
}

/// Marks the challenge `id` used if it is open and unexpired at `now` (part of a group
/// commit's transaction); the row count decides.
pub(super) fn use_one(c: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<Settled> {
    let n = diesel::update(
        challenges::table
            .filter(challenges::id.eq(id))
            .filter(challenges::state.eq("open"))
            .filter(challenges::expires_at.gt(now)),
    )
    .set(challenges::state.eq("used"))
    .execute(c)?;
    if n == 1 {
        return Ok(Settled::Used);
    }
    let (state, expires_at): (String, DateTime<Utc>) = challenges::table
        .find(id)
        .select((challenges::state, challenges::expires_at))
        .first(c)?;
    Ok(match state.as_str() {
        "used" => Settled::AlreadyUsed,
        "locked" => Settled::Locked,
        _ if expires_at <= now => Settled::Expired,
        _ => Settled::AlreadyUsed,
    })
}

/// Counts a wrong code on the challenge `id` (part of a group commit's transaction); locks it
/// at `max_failures`. Whether it is now locked, or was not open.
pub(super) fn fail_one(c: &mut PgConnection, id: Uuid, max_failures: i32) -> QueryResult<bool> {
    let count: Option<i32> = diesel::update(
        challenges::table
            .filter(challenges::id.eq(id))
            .filter(challenges::state.eq("open")),
    )
    .set(challenges::failure_count.eq(challenges::failure_count + 1))
    .returning(challenges::failure_count)
    .get_result(c)
    .optional()?;
    Ok(match count {
        None => true,
        Some(n) if n >= max_failures => {
            diesel::update(challenges::table.find(id))
                .set(challenges::state.eq("locked"))
                .execute(c)?;
            true
        }
        Some(_) => false,
    })
}

impl Settled {
    /// The stable result name (`accept` for a successful use).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyUsed => "used",
            Self::Expired => "expired",
            Self::Locked => "locked",
            Self::Used => "accept",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 250_000_000).unwrap()
    }

    #[test]
    fn an_interval_is_a_600th_of_the_window_and_at_least_a_second() {
        let minute = chrono::Duration::seconds(60);
        assert_eq!(
            counted(at(1_000), minute),
            at(1_001) - chrono::Duration::milliseconds(250)
        );
        let day = chrono::Duration::days(1);
        // 144-second intervals: 1,000 falls in [864, 1,008).
        assert_eq!(counted(at(1_000), day).timestamp(), 1_008);
        assert_eq!(counted(at(1_007), day).timestamp(), 1_008);
        assert_eq!(counted(at(1_008), day).timestamp(), 1_152);
    }

    #[test]
    fn a_creation_counts_for_its_window_and_less_than_an_interval_more() {
        for window in [1, 59, 60, 600, 3_600, 86_400] {
            let window = chrono::Duration::seconds(window);
            let width = chrono::Duration::seconds((window.num_seconds() / 600).max(1));
            for t in [0, 1, 599, 86_399, 1_700_000_123] {
                let created = at(t);
                let end = counted(created, window);
                // Counted while the interval's end is after the window's start, i.e. until
                // `end + window`: never less than the window, less than one interval more.
                assert!(end > created && end <= created + width, "{window} {t}");
            }
        }
    }
}
