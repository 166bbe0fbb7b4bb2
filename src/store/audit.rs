//! The append-only audit trail.

use diesel::prelude::*;
use uuid::Uuid;

use diesel::sql_types::Untyped;

use super::batch::{Batch, Statement};
use super::schema::audit_log;

/// One audit row: who did what to which token, with what result. Never a secret.
#[derive(Clone, Debug, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    /// The calling channel, if any (the CLI acts without one).
    pub channel_id: Option<Uuid>,
    /// The token concerned, if any.
    pub token_id: Option<Uuid>,
    /// The user concerned, if any.
    pub user_id: Option<String>,
    /// What was done: `verify`, `enrol`, `delete`, `resync`, `unlock`, `channel.create`, ...
    pub action: String,
    /// How it ended: `accept`, `reject`, `replay`, `locked`, `ok`, ...
    pub result: String,
    /// The HOTP counter or TOTP step involved, if any.
    pub moving_factor: Option<i64>,
    /// The request id of the API call (for correlation with the logs).
    pub request_id: Option<String>,
    /// The challenge concerned, if any.
    pub challenge_id: Option<Uuid>,
}

pub(super) fn append(conn: &mut PgConnection, entry: &AuditEntry) -> QueryResult<()> {
    append_many(conn, std::slice::from_ref(entry))
}

/// Appends `entries` in order, in one statement whatever their number.
pub(super) fn append_many(conn: &mut PgConnection, entries: &[AuditEntry]) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    Batch::<AppendAll>::new(entries)?.execute(conn).map(|_| ())
}

/// The rows of a batch of [`AuditEntry`]s, numbered in the batch's order (a function scan
/// feeding an `INSERT` yields its rows in order).
#[derive(Default)]
struct AppendAll;

impl Statement for AppendAll {
    type SqlType = Untyped;

    const SQL: &'static str =
        "INSERT INTO audit_log (channel_id, token_id, user_id, action, result, \
                 moving_factor, request_id, challenge_id) \
             SELECT channel_id, token_id, user_id, action, result, moving_factor, request_id, \
                 challenge_id \
             FROM jsonb_to_recordset($1) AS a(channel_id uuid, token_id uuid, user_id text, \
                 action text, result text, moving_factor bigint, request_id text, \
                 challenge_id uuid)";
}
