//! What a verification by user id tries: the user's tokens and open challenges, read for many
//! concurrent verifications at once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use uuid::Uuid;

use super::batch::{self, Batch, Statement};
use super::group::{each, Job};
use super::schema::users;
use super::{ChallengeRow, Store, StoreError, TokenRow};

/// Open challenges tried per user, newest first.
const OPEN_CHALLENGES_TRIED: usize = 10;

/// A user's tokens (oldest first) and open, unexpired challenges (newest first, at most
/// [`OPEN_CHALLENGES_TRIED`]); with neither, whether the user is in the channel's directory.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// The user's tokens.
    pub tokens: Vec<TokenRow>,
    /// The user's open challenges.
    pub challenges: Vec<ChallengeRow>,
    /// Whether the user has a directory entry (read only when there is nothing to try).
    pub in_directory: bool,
}

/// One user's candidates, to be read with others: one statement for the tokens of every
/// read (which also says which users have an open challenge), one for the challenges of
/// those that have one, and one for directory entries only if some read found nothing to
/// try. Each read keeps only the rows of its own (channel, user).
pub(super) struct UserRead {
    channel_id: Uuid,
    user: String,
    now: DateTime<Utc>,
}

impl UserRead {
    pub(super) fn new(channel_id: Uuid, user: String, now: DateTime<Utc>) -> Self {
        Self {
            channel_id,
            user,
            now,
        }
    }
}

impl Job for UserRead {
    type Output = Candidates;

    fn rows(&self) -> &[Uuid] {
        &[] // a read changes nothing
    }

    fn run(store: &Store, reads: &[&Self]) -> Vec<Result<Candidates, StoreError>> {
        let found = store.run("user_candidates_many", |c| Ok(candidates(c, reads)?));
        each(reads.len(), found)
    }
}

/// A (channel, user) of the batch, once, with the earliest `now` of its reads.
#[derive(serde::Serialize)]
struct Pair<'a> {
    channel: Uuid,
    user_id: &'a str,
    now: DateTime<Utc>,
}

/// Each pair's tokens (an index probe of `tokens_channel_user`), and whether it has an open
/// challenge at its `now` (a probe of `challenges_user`): one row per token, or one without
/// a token for a pair that has none.
struct UserTokens {
    columns: AsSelect<Option<TokenRow>, Pg>,
}

impl Default for UserTokens {
    fn default() -> Self {
        Self {
            columns: Option::<TokenRow>::as_select(),
        }
    }
}

impl Statement for UserTokens {
    type SqlType = (
        diesel::sql_types::Uuid,
        diesel::sql_types::Text,
        diesel::sql_types::Bool,
        SqlTypeOf<AsSelect<Option<TokenRow>, Pg>>,
    );

    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
        out.push_sql(
            "SELECT r.channel, r.user_id, EXISTS (SELECT 1 FROM challenges \
                 WHERE challenges.channel_id = r.channel AND challenges.user_id = r.user_id \
                 AND challenges.state = 'open' AND challenges.expires_at > r.now), ",
        );
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(" FROM jsonb_to_recordset(");
        batch::bind_batch(out.reborrow(), batch)?;
        out.push_sql(
            ") AS r(channel uuid, user_id text, now timestamptz) \
             LEFT JOIN LATERAL (SELECT * FROM tokens \
                 WHERE tokens.channel_id = r.channel AND tokens.user_id = r.user_id OFFSET 0) \
                 AS tokens ON true",
        );
        Ok(())
    }
}

/// Each pair's open challenges at its `now`, newest first, at most
/// [`OPEN_CHALLENGES_TRIED`]: an index probe each (`challenges_user`).
struct UserChallenges {
    columns: AsSelect<ChallengeRow, Pg>,
}

impl Default for UserChallenges {
    fn default() -> Self {
        Self {
            columns: ChallengeRow::as_select(),
        }
    }
}

impl Statement for UserChallenges {
    type SqlType = SqlTypeOf<AsSelect<ChallengeRow, Pg>>;

    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
        out.push_sql("SELECT ");
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(" FROM jsonb_to_recordset(");
        batch::bind_batch(out.reborrow(), batch)?;
        out.push_sql(&format!(
            ") AS r(channel uuid, user_id text, now timestamptz) \
             JOIN LATERAL (SELECT * FROM challenges \
                 WHERE challenges.channel_id = r.channel AND challenges.user_id = r.user_id \
                 AND challenges.state = 'open' AND challenges.expires_at > r.now \
                 ORDER BY challenges.created_at DESC LIMIT {OPEN_CHALLENGES_TRIED}) \
                 AS challenges ON true"
        ));
        Ok(())
    }
}

type Key = (Uuid, String);

pub(super) fn candidates(
    c: &mut PgConnection,
    reads: &[&UserRead],
) -> QueryResult<Vec<Candidates>> {
    let mut pairs: Vec<Pair<'_>> = Vec::with_capacity(reads.len());
    for read in reads {
        let same = |p: &&mut Pair<'_>| p.channel == read.channel_id && p.user_id == read.user;
        match pairs.iter_mut().find(same) {
            Some(pair) => pair.now = pair.now.min(read.now),
            None => pairs.push(Pair {
                channel: read.channel_id,
                user_id: &read.user,
                now: read.now,
            }),
        }
    }
    let mut tokens: HashMap<Key, Vec<TokenRow>> = HashMap::new();
    let mut with_challenges: HashSet<Key> = HashSet::new();
    let rows = Batch::<UserTokens>::new(&pairs)?;
    for (channel, user, open, token) in rows.load::<(Uuid, String, bool, Option<TokenRow>)>(c)? {
        let key = (channel, user);
        if open {
            with_challenges.insert(key.clone());
        }
        if let Some(token) = token {
            tokens.entry(key).or_default().push(token);
        }
    }
    // The challenges themselves only for the pairs that have one open (most have none).
    pairs.retain(|p| with_challenges.contains(&(p.channel, p.user_id.to_owned())));
    let mut challenges: HashMap<Key, Vec<ChallengeRow>> = HashMap::new();
    let open_rows = if pairs.is_empty() {
        Vec::new()
    } else {
        Batch::<UserChallenges>::new(&pairs)?.load::<ChallengeRow>(c)?
    };
    for row in open_rows {
        if let Some(user) = row.user_id.clone() {
            challenges
                .entry((row.channel_id, user))
                .or_default()
                .push(row);
        }
    }
    let mut found: Vec<(&UserRead, Candidates)> = reads
        .iter()
        .map(|&read| {
            let key = (read.channel_id, read.user.clone());
            let mut tokens = tokens.get(&key).cloned().unwrap_or_default();
            tokens.sort_by_key(|t| (t.created_at, t.id));
            // Fetched at the pair's earliest `now`: each read keeps those open at its own.
            let challenges = challenges
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|ch| ch.expires_at > read.now)
                .cloned()
                .collect();
            let candidates = Candidates {
                tokens,
                challenges,
                in_directory: false,
            };
            (read, candidates)
        })
        .collect();
    let empty: Vec<&UserRead> = found
        .iter()
        .filter(|(_, c)| c.is_empty())
        .map(|(read, _)| *read)
        .collect();
    if !empty.is_empty() {
        // Rare (a user with nothing to try): a plain statement.
        let channels: Vec<Uuid> = empty.iter().map(|r| r.channel_id).collect();
        let users: Vec<&str> = empty.iter().map(|r| r.user.as_str()).collect();
        let entries: HashSet<Key> = users::table
            .filter(users::channel_id.eq_any(&channels))
            .filter(users::user_id.eq_any(&users))
            .select((users::channel_id, users::user_id))
            .load::<Key>(c)?
            .into_iter()
            .collect();
        for (read, candidates) in &mut found {
            if candidates.is_empty() {
                candidates.in_directory = entries.contains(&(read.channel_id, read.user.clone()));
            }
        }
    }
    Ok(found.into_iter().map(|(_, c)| c).collect())
}

impl Candidates {
    /// Nothing to try: no token, no open challenge.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.challenges.is_empty()
    }
}

impl Store {
    /// The tokens and open challenges of `user` in `channel_id` at `now`, read together
    /// with those of other verifications that are ready (an async task awaits them without
    /// a blocking thread).
    pub async fn user_candidates_async(
        &self,
        channel_id: Uuid,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Candidates, StoreError> {
        let read = UserRead::new(channel_id, user.to_owned(), now);
        self.user_reads.submit_async(self, read).await
    }
}
