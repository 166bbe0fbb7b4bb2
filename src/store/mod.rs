//! PostgreSQL through diesel: the only module that imports `diesel` and the only SQL.
//!
//! Operations are blocking and are called from the blocking thread pool, except the grouped
//! ones a verification uses (channel, token and user reads, and the group commit: see
//! `group`), which an async task can also await without a thread of its own. Races between
//! requests and between server processes are settled here, by PostgreSQL: each verification
//! outcome is one transaction whose conditional `UPDATE` decides it by its row count, together
//! with the audit row that records it (promises 4, 5 and 7).

mod audit;
mod batch;
mod candidates;
mod challenges;
mod channels;
mod commit;
mod group;
pub mod migrate;
mod outbox;
mod schema;
mod templates;
mod tokens;
mod users;

pub use audit::AuditEntry;
pub use candidates::Candidates;
pub use challenges::{ChallengeRow, Creation, Limits, NewMessage, Settled};
pub use channels::{ChannelFound, ChannelRow, Naming, NewChannel};
pub use outbox::{Attempt, OutboxRow};
pub use templates::TemplateRow;
pub use tokens::{Advance, Failure, ImportMark, NewToken, TokenRow};
pub use users::UserRow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::r2d2::{self, ConnectionManager, ManageConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::metrics::Metrics;

type PgPool = Pool<Manager>;

/// A database failure, classified for the caller.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had, or it broke: answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint refused the write (a name already taken).
    #[error("already exists")]
    Conflict,
    /// Anything else.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            // A unique key taken, or a conditional write that found the row moved on.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            | DieselError::RollbackTransaction => Self::Conflict,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)
            | DieselError::BrokenTransactionManager => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// The connection pool and every query.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    metrics: Arc<Metrics>,
    commits: Arc<group::Group<commit::Op>>,
    reads: Arc<group::Group<tokens::TokenRead>>,
    channel_reads: Arc<group::Group<channels::ChannelRead>>,
    user_reads: Arc<group::Group<candidates::UserRead>>,
    challenge_reads: Arc<group::Group<challenges::ChallengeRead>>,
    group_commit: bool,
    /// Shared with the pool's manager: failed operations so far.
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// A pool of up to `size` connections. Connections are made lazily and checked before
    /// use, so the service starts (not ready) without a database and recovers by itself.
    ///
    /// A connection is not pinged at every checkout (that would cost a round trip per query),
    /// only when it has been idle for a while or a query has failed on any connection since
    /// it was last checked; one whose query failed is discarded.
    pub fn new(database_url: &str, size: u32, metrics: Arc<Metrics>) -> Self {
        let failures = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            inner: ConnectionManager::<PgConnection>::new(database_url),
            failures: failures.clone(),
        };
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECTION_WITHIN)
            .test_on_check_out(true)
            .build_unchecked(manager);
        Self {
            pool,
            metrics,
            commits: Arc::new(group::Group::default()),
            reads: Arc::new(group::Group::default()),
            channel_reads: Arc::new(group::Group::default()),
            user_reads: Arc::new(group::Group::default()),
            challenge_reads: Arc::new(group::Group::default()),
            group_commit: true,
            failures,
        }
    }

    /// This store, reading each channel and token and settling each verification on its own (for
    /// comparison runs: `group_commit = false`).
    pub fn without_group_commit(mut self) -> Self {
        self.group_commit = false;
        self
    }

    /// This store with groups of its own (never used): what a group's runner holds, so that
    /// it keeps neither its group nor itself alive.
    fn detached(&self) -> Self {
        Self {
            commits: Arc::default(),
            reads: Arc::default(),
            channel_reads: Arc::default(),
            user_reads: Arc::default(),
            challenge_reads: Arc::default(),
            ..self.clone()
        }
    }

    /// Checks that a connection can be had and answers (for `/readyz`).
    /// It waits at most [`READY_WITHIN`] for a connection, where a request waits up to
    /// three seconds: a probe gets its answer within the usual probe timeout.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.run_within("ping", READY_WITHIN, |c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
    }

    /// (idle, in use) connections, for the pool gauges.
    pub fn pool_usage(&self) -> (usize, usize) {
        let state = self.pool.state();
        let idle = state.idle_connections as usize;
        (idle, (state.connections as usize).saturating_sub(idle))
    }

    /// Runs `f` on a pooled connection and records its latency under `operation`.
    fn run<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut PgConnection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.run_within(operation, CONNECTION_WITHIN, f)
    }

    /// [`Self::run`], waiting at most `wait` for a connection.
    fn run_within<R>(
        &self,
        operation: &'static str,
        wait: Duration,
        f: impl FnOnce(&mut PgConnection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let started = Instant::now();
        let result = self.conn(wait).and_then(|mut c| {
            let result = f(&mut c.conn);
            c.last_used = Instant::now();
            if result.is_err() {
                // A failed query may have left the connection unusable (the server went
                // away, say): discard it, and check the idle ones before their next use.
                c.broken = true;
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            result
        });
        if let Err(e) = &result {
            tracing::warn!(operation, error = %e, "database operation failed");
        }
        self.metrics
            .observe_db(operation, result.is_ok(), started.elapsed());
        result
    }

    /// Runs `f` while holding the advisory lock `name`, which every process on this
    /// database shares: callers of any process take turns. `f` does not use the database
    /// (the lock lives in a transaction of its own, ended when `f` returns).
    pub fn exclusively<R>(&self, name: &str, f: impl FnOnce() -> R) -> Result<R, StoreError> {
        self.transaction("exclusively", |c| {
            let lock = diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(name);
            diesel::RunQueryDsl::execute(lock, c)?;
            Ok(f())
        })
    }

    /// Runs `f` in one transaction on a pooled connection.
    fn transaction<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<R>,
    ) -> Result<R, StoreError> {
        use diesel::Connection;
        self.run(operation, |c| c.transaction(f).map_err(StoreError::from))
    }

    fn conn(&self, wait: Duration) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool
            .get_timeout(wait)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// How long a request waits for a pooled connection before it is answered 503.
const CONNECTION_WITHIN: Duration = Duration::from_secs(3);

/// How long the readiness check waits for one: under a second, the usual probe timeout.
const READY_WITHIN: Duration = Duration::from_millis(500);

/// A connection idle for longer than this is pinged before it is used again.
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// A pooled connection: when it was last used and checked, and whether a failure has made it
/// unfit for reuse.
pub(crate) struct Conn {
    conn: PgConnection,
    broken: bool,
    last_used: Instant,
    checked_after_failures: u64,
}

/// diesel's connection manager, pinging a connection at checkout only when it may have gone
/// stale: idle for more than [`TRUSTED_IDLE`], or a query failed on some connection since
/// it was last checked (the database may have gone away meanwhile).
#[derive(Debug)]
struct Manager {
    inner: ConnectionManager<PgConnection>,
    /// Failed operations so far, on any connection of the pool.
    failures: Arc<AtomicU64>,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        self.inner.connect().map(|conn| Conn {
            conn,
            broken: false,
            last_used: Instant::now(),
            checked_after_failures: self.failures.load(Ordering::Relaxed),
        })
    }

    fn is_valid(&self, c: &mut Conn) -> Result<(), r2d2::Error> {
        let failures = self.failures.load(Ordering::Relaxed);
        if c.checked_after_failures == failures && c.last_used.elapsed() < TRUSTED_IDLE {
            return Ok(());
        }
        self.inner.is_valid(&mut c.conn)?;
        c.checked_after_failures = failures;
        c.last_used = Instant::now();
        Ok(())
    }

    fn has_broken(&self, c: &mut Conn) -> bool {
        c.broken || self.inner.has_broken(&mut c.conn)
    }
}
