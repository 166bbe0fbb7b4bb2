//! What a verification by user id tries: the user's tokens and open challenges, read for many
//! concurrent verifications at once.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::group::Job;
use super::schema::{challenges, tokens, users};
use super::{ChallengeRow, Store, StoreError, TokenRow};

/// Open challenges tried per user, newest first.
pub const OPEN_CHALLENGES_TRIED: usize = 10;

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
/// read, one for the challenges, and one for directory entries only if some read found
/// nothing to try. Each statement filters on the reads' channels and users, and each read
/// keeps only the rows of its own (channel, user).
pub(super) struct UserRead {
    channel_id: Uuid,
    user: String,
    now: DateTime<Utc>,
}

impl Job for UserRead {
    type Output = Candidates;

    fn rows(&self) -> &[Uuid] {
        &[] // a read changes nothing
    }

    fn run(store: &Store, reads: &[&Self]) -> Vec<Result<Candidates, StoreError>> {
        match store.run("user_candidates_many", |c| Ok(candidates(c, reads)?)) {
            Ok(found) => found.into_iter().map(Ok).collect(),
            Err(e) => reads.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

fn candidates(c: &mut PgConnection, reads: &[&UserRead]) -> QueryResult<Vec<Candidates>> {
    let channels: Vec<Uuid> = distinct(reads.iter().map(|r| r.channel_id));
    let users: Vec<&str> = distinct(reads.iter().map(|r| r.user.as_str()));
    // The earliest `now` of the batch fetches every read's open challenges; each read then
    // keeps those still open at its own `now`.
    let Some(earliest) = reads.iter().map(|r| r.now).min() else {
        return Ok(Vec::new());
    };
    let token_rows: Vec<TokenRow> = tokens::table
        .filter(tokens::channel_id.eq_any(&channels))
        .filter(tokens::user_id.eq_any(&users))
        .order((tokens::created_at, tokens::id))
        .select(TokenRow::as_select())
        .load(c)?;
    let challenge_rows: Vec<ChallengeRow> = challenges::table
        .filter(challenges::channel_id.eq_any(&channels))
        .filter(challenges::user_id.eq_any(&users))
        .filter(challenges::state.eq("open"))
        .filter(challenges::expires_at.gt(earliest))
        .order((challenges::created_at.desc(), challenges::id))
        .select(ChallengeRow::as_select())
        .load(c)?;
    let mut found: Vec<(&UserRead, Candidates)> = reads
        .iter()
        .map(|&read| {
            let tokens = token_rows
                .iter()
                .filter(|t| t.channel_id == read.channel_id && t.user_id == read.user)
                .cloned()
                .collect();
            let challenges = challenge_rows
                .iter()
                .filter(|ch| {
                    ch.channel_id == read.channel_id
                        && ch.user_id.as_deref() == Some(read.user.as_str())
                        && ch.expires_at > read.now
                })
                .take(OPEN_CHALLENGES_TRIED)
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
        let channels: Vec<Uuid> = distinct(empty.iter().map(|r| r.channel_id));
        let users: Vec<&str> = distinct(empty.iter().map(|r| r.user.as_str()));
        let entries: HashSet<(Uuid, String)> = users::table
            .filter(users::channel_id.eq_any(&channels))
            .filter(users::user_id.eq_any(&users))
            .select((users::channel_id, users::user_id))
            .load::<(Uuid, String)>(c)?
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

/// The distinct values of `items`, in first-seen order.
fn distinct<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|x| seen.insert(*x)).collect()
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
        let read = UserRead {
            channel_id,
            user: user.to_owned(),
            now,
        };
        self.user_reads.submit_async(self, read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_of_each_in_order() {
        assert_eq!(distinct([3, 1, 3, 2, 1].into_iter()), [3, 1, 2]);
    }
}
