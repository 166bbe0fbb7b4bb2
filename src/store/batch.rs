//! The grouped statements, with a batch as their one parameter: a JSON array, one element
//! per job, expanded by `jsonb_to_recordset`.
//!
//! Their text never changes with the size of the batch, so each connection prepares each of
//! them once (diesel's statement cache, keyed by the statement's type) and PostgreSQL plans
//! them once: `jsonb_to_recordset` is estimated at the same 100 rows with or without the
//! parameter's value, so after its first five executions PostgreSQL keeps the generic plan
//! instead of planning every batch anew (with arrays and `unnest`, the estimate follows the
//! actual length and a custom plan was made each time: the largest part of PostgreSQL's work
//! per verification). Where a row is looked up per element, the lookup is a `LATERAL`
//! subquery (`OFFSET 0` keeps it one): its only plan is an index probe per element, whatever
//! the size of the table.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};
use serde::Serialize;

/// A grouped statement: its SQL, around the batch's JSON.
pub(super) trait Statement: Default + 'static {
    /// What a row of its result is.
    type SqlType;

    /// Its text, whose one parameter `$1` is the batch (unless [`Self::walk_ast`] writes it).
    const SQL: &'static str = "";

    /// Writes the statement, binding `batch` (JSON text) with [`bind_batch`].
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
        with_batch(out, Self::SQL, batch)
    }
}

/// Writes `sql`, whose one parameter `$1` is the batch.
fn with_batch<'b>(
    mut out: AstPass<'_, 'b, Pg>,
    sql: &'static str,
    batch: &'b str,
) -> QueryResult<()> {
    let (before, after) = sql
        .split_once("$1")
        .ok_or_else(|| DieselError::QueryBuilderError("a batch statement without $1".into()))?;
    out.push_sql(before);
    bind_batch(out.reborrow(), batch)?;
    out.push_sql(after);
    Ok(())
}

/// Binds the batch as `jsonb`.
pub(super) fn bind_batch<'b>(mut out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
    out.push_bind_param::<Text, _>(batch)?;
    out.push_sql("::jsonb");
    Ok(())
}

/// One execution of the statement `S` on a batch.
pub(super) struct Batch<S> {
    json: String,
    statement: S,
}

impl<S: Statement> Batch<S> {
    /// The statement on `rows`, each serialized as an object whose fields the statement's
    /// `jsonb_to_recordset` names.
    pub(super) fn new<T: Serialize>(rows: &[T]) -> QueryResult<Self> {
        Ok(Self {
            json: serde_json::to_string(rows)
                .map_err(|e| DieselError::SerializationError(Box::new(e)))?,
            statement: S::default(),
        })
    }
}

impl<S: Statement> QueryFragment<Pg> for Batch<S> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.statement.walk_ast(out, &self.json)
    }
}

impl<S: Statement> QueryId for Batch<S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: Statement> Query for Batch<S> {
    type SqlType = S::SqlType;
}

impl<S, C> RunQueryDsl<C> for Batch<S> {}

/// Serializes a byte string as the hex text `decode(…, 'hex')` reads.
pub(super) fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}
