//! Tokens, and the transactions that settle a verification.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::commit::{mismatch, Op, Outcome};
use super::group::{answer_each, Job};
use super::schema::{imports, tokens};
use super::{Store, StoreError};

/// A token as stored. Holds no seed: only where the HSM keeps it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = tokens)]
pub struct TokenRow {
    /// Identifier.
    pub id: Uuid,
    /// Owning channel.
    pub channel_id: Uuid,
    /// The user it belongs to, in the channel's namespace.
    pub user_id: String,
    /// `hotp` or `totp`.
    pub kind: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// 6 to 8.
    pub digits: i16,
    /// TOTP period in seconds (30 for HOTP rows, unused).
    pub period: i32,
    /// The lowest counter / time step not yet used.
    pub next_factor: i64,
    /// Known TOTP clock drift in steps (set by resync).
    pub drift: i32,
    /// The wrapped seed (wrapped storage).
    pub wrapped_seed: Option<Vec<u8>>,
    /// Version of the KEK that wrapped it.
    pub kek_version: Option<i32>,
    /// Label of the seed object (object storage).
    pub hsm_label: Option<String>,
    /// Issuer shown in authenticator apps.
    pub issuer: Option<String>,
    /// Consecutive failed verifications.
    pub failure_count: i32,
    /// When the token was locked, if it is.
    pub locked_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A token to create.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = tokens)]
pub struct NewToken {
    /// Identifier.
    pub id: Uuid,
    /// Owning channel.
    pub channel_id: Uuid,
    /// Its user.
    pub user_id: String,
    /// `hotp` or `totp`.
    pub kind: String,
    /// Hash function name.
    pub algorithm: String,
    /// Number of digits.
    pub digits: i16,
    /// TOTP period.
    pub period: i32,
    /// Initial counter (HOTP) or 0.
    pub next_factor: i64,
    /// Wrapped seed, if wrapped.
    pub wrapped_seed: Option<Vec<u8>>,
    /// KEK version, if wrapped.
    pub kek_version: Option<i32>,
    /// Object label, if an object.
    pub hsm_label: Option<String>,
    /// Issuer.
    pub issuer: Option<String>,
}

/// One token read, to be done with others in one statement.
pub(super) struct TokenRead {
    channel_id: Uuid,
    id: Uuid,
}

impl Job for TokenRead {
    type Output = Option<TokenRow>;

    fn rows(&self) -> &[Uuid] {
        &[] // a read changes nothing
    }

    fn run(store: &Store, reads: &[&Self]) -> Vec<Result<Option<TokenRow>, StoreError>> {
        let ids: Vec<Uuid> = reads.iter().map(|r| r.id).collect();
        let rows = store.run("token_get_many", |c| {
            Ok(tokens::table
                .filter(tokens::id.eq_any(&ids))
                .select(TokenRow::as_select())
                .load(c)?)
        });
        answer_each(
            reads,
            rows,
            |row| row.id,
            |read, by_id| {
                by_id
                    .get(&read.id)
                    .filter(|row| row.channel_id == read.channel_id)
                    .cloned()
            },
        )
    }
}

/// How a proposed accept ended once PostgreSQL settled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// The factor moved past the match: this request, and only this one, accepts.
    Done,
    /// Another request used this factor (or a later one) first.
    Replay,
    /// The token is locked.
    Locked,
    /// The token no longer exists.
    Gone,
}

/// How a recorded failure left the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the token is still usable.
    Counted,
    /// Counted, and it reached the limit: the token is now locked.
    NowLocked,
    /// It was already locked.
    Locked,
}

/// A seed file's import into a channel: its file's MAC, and how many of its tokens were in
/// when the batch being written was read.
#[derive(Clone, Debug)]
pub struct ImportMark {
    /// The channel imported into.
    pub channel_id: Uuid,
    /// The HSM MAC of the file's SHA-256.
    pub file_mac: Vec<u8>,
    /// Tokens of the file imported before this batch.
    pub imported: i64,
}

impl Store {
    /// Creates a token and its audit row.
    pub fn insert_token(&self, new: &NewToken, entry: &AuditEntry) -> Result<TokenRow, StoreError> {
        self.transaction("token_insert", |c| {
            let row = diesel::insert_into(tokens::table)
                .values(new)
                .returning(TokenRow::as_returning())
                .get_result(c)?;
            audit::append(c, entry)?;
            Ok(row)
        })
    }

    /// Creates many tokens and their audit rows in one transaction (bulk import). With an
    /// `import`, the file's count of imported tokens moves on by as many in the same
    /// transaction, if it still stands where the mark says (else `Conflict`, nothing written).
    pub fn insert_tokens(
        &self,
        new: &[NewToken],
        entries: &[AuditEntry],
        import: Option<&ImportMark>,
    ) -> Result<(), StoreError> {
        // 12 and 9 bind parameters a row: chunks stay well under PostgreSQL's 65,535.
        const CHUNK: usize = 2_000;
        self.transaction("token_insert_many", |c| {
            if let Some(mark) = import {
                // Counted with the tokens, only if no other run has moved the count.
                let moved = diesel::update(imports::table.find((mark.channel_id, &mark.file_mac)))
                    .filter(imports::imported.eq(mark.imported))
                    .set((
                        imports::imported.eq(imports::imported + new.len() as i64),
                        imports::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(c)?;
                if moved != 1 {
                    return Err(diesel::result::Error::RollbackTransaction);
                }
            }
            for chunk in new.chunks(CHUNK) {
                diesel::insert_into(tokens::table)
                    .values(chunk)
                    .execute(c)?;
            }
            for chunk in entries.chunks(CHUNK) {
                audit::append_many(c, chunk)?;
            }
            Ok(())
        })
    }

    /// How many tokens of the file with this MAC are imported into `channel_id`, or nothing
    /// if its import never started.
    pub fn import_progress(
        &self,
        channel_id: Uuid,
        file_mac: &[u8],
    ) -> Result<Option<i64>, StoreError> {
        self.run("import_progress", |c| {
            Ok(imports::table
                .find((channel_id, file_mac))
                .select(imports::imported)
                .first(c)
                .optional()?)
        })
    }

    /// Records the start of an import of `total` tokens; `Conflict` if it was started
    /// already (by another run, meanwhile).
    pub fn begin_import(
        &self,
        channel_id: Uuid,
        file_mac: &[u8],
        total: i64,
    ) -> Result<(), StoreError> {
        self.run("import_begin", |c| {
            diesel::insert_into(imports::table)
                .values((
                    imports::channel_id.eq(channel_id),
                    imports::file_mac.eq(file_mac),
                    imports::total.eq(total),
                    imports::imported.eq(0),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    /// The token `id` if it belongs to `channel_id`. Read together with the other token
    /// reads waiting at that moment, in one statement (unless `group_commit` is off).
    pub fn token(&self, channel_id: Uuid, id: Uuid) -> Result<Option<TokenRow>, StoreError> {
        self.reads.submit(self, TokenRead { channel_id, id })
    }

    /// Deletes the token `id` of `channel_id`; returns the deleted row.
    pub fn delete_token(
        &self,
        channel_id: Uuid,
        id: Uuid,
        entry: &AuditEntry,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.transaction("token_delete", |c| {
            let row = diesel::delete(
                tokens::table.filter(tokens::id.eq(id).and(tokens::channel_id.eq(channel_id))),
            )
            .returning(TokenRow::as_returning())
            .get_result(c)
            .optional()?;
            if row.is_some() {
                audit::append(c, entry)?;
            }
            Ok(row)
        })
    }

    /// Moves the token's factor past `factor` (and sets `drift`) if nobody used `factor` or a
    /// later one and the token is not locked; records `entry` with the settled result.
    ///
    /// The conditional `UPDATE`'s row count is the verdict (promise 4), and the audit row is
    /// written in the same transaction (promise 7): a group commit with whatever other
    /// verifications are ready, answered only once it has committed.
    pub fn advance(
        &self,
        token_id: Uuid,
        factor: i64,
        drift: Option<i32>,
        entry: AuditEntry,
    ) -> Result<Advance, StoreError> {
        advanced(self.submit(advance(token_id, factor, drift, entry)))
    }

    /// [`Self::advance`] for an async task (the HTTP workers): it waits for the group commit
    /// without a blocking thread.
    pub async fn advance_async(
        &self,
        token_id: Uuid,
        factor: i64,
        drift: Option<i32>,
        entry: AuditEntry,
    ) -> Result<Advance, StoreError> {
        let op = advance(token_id, factor, drift, entry);
        advanced(self.submit_async(op).await)
    }

    /// Counts one failed verification on each token; locks those that reach `max_failures`.
    /// One audit row per token, in the same (group) transaction.
    pub fn record_failures(
        &self,
        token_ids: &[Uuid],
        max_failures: i32,
        entry: &AuditEntry,
    ) -> Result<Vec<Failure>, StoreError> {
        failed(self.submit(failures(token_ids, max_failures, entry)))
    }

    /// [`Self::record_failures`] for an async task.
    pub async fn record_failures_async(
        &self,
        token_ids: &[Uuid],
        max_failures: i32,
        entry: &AuditEntry,
    ) -> Result<Vec<Failure>, StoreError> {
        let op = failures(token_ids, max_failures, entry);
        failed(self.submit_async(op).await)
    }

    /// Unlocks the token `id` of `channel_id` and clears its failures.
    pub fn unlock_token(
        &self,
        channel_id: Uuid,
        id: Uuid,
        entry: &AuditEntry,
    ) -> Result<Option<TokenRow>, StoreError> {
        self.transaction("token_unlock", |c| {
            let row = diesel::update(
                tokens::table.filter(tokens::id.eq(id).and(tokens::channel_id.eq(channel_id))),
            )
            .set((
                tokens::locked_at.eq(None::<DateTime<Utc>>),
                tokens::failure_count.eq(0),
            ))
            .returning(TokenRow::as_returning())
            .get_result(c)
            .optional()?;
            if row.is_some() {
                audit::append(c, entry)?;
            }
            Ok(row)
        })
    }

    /// Writes one audit row on its own (a verification that changed no state), committed
    /// with the next group.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        audited(self.submit(Op::Audit(entry.clone())))
    }

    /// [`Self::append_audit`] for an async task.
    pub async fn append_audit_async(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        audited(self.submit_async(Op::Audit(entry.clone())).await)
    }
}

fn advance(token_id: Uuid, factor: i64, drift: Option<i32>, entry: AuditEntry) -> Op {
    Op::Advance {
        token_id,
        factor,
        drift,
        entry,
    }
}

fn failures(token_ids: &[Uuid], max_failures: i32, entry: &AuditEntry) -> Op {
    Op::Failures {
        token_ids: token_ids.to_vec(),
        max_failures,
        entry: entry.clone(),
    }
}

fn advanced(settled: Result<Outcome, StoreError>) -> Result<Advance, StoreError> {
    match settled? {
        Outcome::Advance(a) => Ok(a),
        _ => Err(mismatch()),
    }
}

fn failed(settled: Result<Outcome, StoreError>) -> Result<Vec<Failure>, StoreError> {
    match settled? {
        Outcome::Failures(f) => Ok(f),
        _ => Err(mismatch()),
    }
}

fn audited(settled: Result<Outcome, StoreError>) -> Result<(), StoreError> {
    match settled? {
        Outcome::Audit => Ok(()),
        _ => Err(mismatch()),
    }
}
