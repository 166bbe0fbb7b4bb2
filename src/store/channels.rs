//! Channels: the calling applications and how they are authenticated.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::batch::{self, Batch, Statement};
use super::candidates::{candidates, UserRead};
use super::group::{each, Job};
use super::schema::channels;
use super::{Candidates, Store, StoreError, TokenRow};

/// A channel as stored.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = channels)]
pub struct ChannelRow {
    /// Identifier.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// HMAC of the channel key under the HSM's channel-key MAC key.
    pub key_mac: Vec<u8>,
    /// Version of that MAC key.
    pub key_mac_version: i32,
    /// Allowed client certificates (SHA-256 of the DER, lower-case hex); empty: any.
    pub client_cert_sha256: Vec<String>,
    /// Allowed source networks (CIDR); empty: any.
    pub allowed_networks: Vec<String>,
    /// A disabled channel is refused.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// May receive codes in API answers (`delivery: "response"`, code generation surfaces).
    pub may_receive_otp: bool,
    /// Messages it may still send; `None`: no budget.
    pub message_budget: Option<i64>,
    /// Account number (UnityVox's `accountnumber`).
    pub account_number: Option<String>,
}

/// A channel to create.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = channels)]
pub struct NewChannel {
    /// Identifier.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// HMAC of the new channel key.
    pub key_mac: Vec<u8>,
    /// Version of the MAC key.
    pub key_mac_version: i32,
    /// Allowed client certificates.
    pub client_cert_sha256: Vec<String>,
    /// Allowed source networks.
    pub allowed_networks: Vec<String>,
    /// May receive codes in answers.
    pub may_receive_otp: bool,
    /// Message budget.
    pub message_budget: Option<i64>,
    /// Account number.
    pub account_number: Option<String>,
}

/// One lookup of a channel by the MAC of its key, and of the token the request names if it
/// names one, to be done with others in one statement; and of the tokens and open challenges
/// of the user it names if it names one, in one more statement for the batch (two if one of
/// its users has an open challenge), on the same connection, by the same runner.
#[derive(serde::Serialize)]
pub(super) struct ChannelRead {
    #[serde(rename = "mac", serialize_with = "batch::hex_bytes")]
    key_mac: Vec<u8>,
    token: Option<Uuid>,
    #[serde(skip)]
    user: Option<(String, DateTime<Utc>)>,
}

/// What a request names besides its channel key.
#[derive(Clone, Copy, Debug)]
pub enum Naming<'a> {
    /// Nothing: the channel alone.
    Nothing,
    /// A token, by id.
    Token(Uuid),
    /// A user, whose tokens and challenges open at the given time are read.
    User(&'a str, DateTime<Utc>),
}

/// What a channel read found.
#[derive(Clone, Debug, Default)]
pub struct ChannelFound {
    /// The channel with the key's MAC.
    pub channel: Option<ChannelRow>,
    /// The token named, if it is that channel's.
    pub token: Option<TokenRow>,
    /// The candidates of the user named, in that channel.
    pub candidates: Option<Candidates>,
}

/// Each read's channel and, if it names one, its token if that is the channel's: one row
/// per read, an index probe each (the same channel may come back several times).
struct ChannelsAndTokens {
    columns: (AsSelect<ChannelRow, Pg>, AsSelect<Option<TokenRow>, Pg>),
}

impl Default for ChannelsAndTokens {
    fn default() -> Self {
        Self {
            columns: (ChannelRow::as_select(), Option::<TokenRow>::as_select()),
        }
    }
}

impl Statement for ChannelsAndTokens {
    type SqlType = (
        SqlTypeOf<AsSelect<ChannelRow, Pg>>,
        SqlTypeOf<AsSelect<Option<TokenRow>, Pg>>,
    );

    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>, batch: &'b str) -> QueryResult<()> {
        out.push_sql("SELECT ");
        // The subqueries are named after the tables, for the column lists' qualified names.
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(" FROM jsonb_to_recordset(");
        batch::bind_batch(out.reborrow(), batch)?;
        out.push_sql(
            ") AS r(mac text, token uuid) \
             JOIN LATERAL (SELECT * FROM channels \
                 WHERE channels.key_mac = decode(r.mac, 'hex') OFFSET 0) AS channels ON true \
             LEFT JOIN LATERAL (SELECT * FROM tokens \
                 WHERE tokens.id = r.token AND tokens.channel_id = channels.id OFFSET 0) \
                 AS tokens ON true",
        );
        Ok(())
    }
}

impl Job for ChannelRead {
    type Output = ChannelFound;

    fn rows(&self) -> &[Uuid] {
        &[] // a read changes nothing
    }

    fn run(store: &Store, reads: &[&Self]) -> Vec<Result<ChannelFound, StoreError>> {
        let found = store.run("channel_get_many", |c| Ok(read_channels(c, reads)?));
        each(reads.len(), found)
    }
}

fn read_channels(c: &mut PgConnection, reads: &[&ChannelRead]) -> QueryResult<Vec<ChannelFound>> {
    let rows = Batch::<ChannelsAndTokens>::new(reads)?.load::<(ChannelRow, Option<TokenRow>)>(c)?;
    let mut by_mac = HashMap::new();
    let mut by_token = HashMap::new();
    for (channel, token) in rows {
        if let Some(token) = token {
            by_token.insert(token.id, token);
        }
        by_mac.entry(channel.key_mac.clone()).or_insert(channel);
    }
    let mut found: Vec<ChannelFound> = reads
        .iter()
        .map(|read| {
            let channel = by_mac.get(&read.key_mac).cloned();
            // Only a token of the caller's own channel (another caller's may be here too).
            let token = read
                .token
                .and_then(|id| by_token.get(&id))
                .filter(|t| channel.as_ref().is_some_and(|c| c.id == t.channel_id))
                .cloned();
            ChannelFound {
                channel,
                token,
                candidates: None,
            }
        })
        .collect();
    // The users named, in the channels found: their candidates in the same batch.
    let users: Vec<(usize, UserRead)> = found
        .iter()
        .zip(reads)
        .enumerate()
        .filter_map(|(i, (f, read))| {
            let (user, now) = read.user.as_ref()?;
            let channel_id = f.channel.as_ref()?.id;
            Some((i, UserRead::new(channel_id, user.clone(), *now)))
        })
        .collect();
    if !users.is_empty() {
        let named: Vec<&UserRead> = users.iter().map(|(_, u)| u).collect();
        for ((i, _), read) in users.iter().zip(candidates(c, &named)?) {
            if let Some(f) = found.get_mut(*i) {
                f.candidates = Some(read);
            }
        }
    }
    Ok(found)
}

impl ChannelRead {
    fn new(key_mac: &[u8], naming: Naming<'_>) -> Self {
        let (token, user) = match naming {
            Naming::Nothing => (None, None),
            Naming::Token(id) => (Some(id), None),
            Naming::User(user, now) => (None, Some((user.to_owned(), now))),
        };
        Self {
            key_mac: key_mac.to_vec(),
            token,
            user,
        }
    }
}

impl Store {
    /// Creates a channel and its audit row.
    pub fn insert_channel(&self, new: &NewChannel) -> Result<ChannelRow, StoreError> {
        self.transaction("channel_insert", |c| {
            let row = diesel::insert_into(channels::table)
                .values(new)
                .returning(ChannelRow::as_returning())
                .get_result(c)?;
            audit::append(c, &admin_audit(row.id, "channel.create"))?;
            Ok(row)
        })
    }

    /// The channel whose key has this MAC: read together with every other caller's lookup
    /// ready at that moment, in one statement (each request authenticates this way).
    pub fn channel_by_key_mac(&self, key_mac: &[u8]) -> Result<Option<ChannelRow>, StoreError> {
        let read = ChannelRead::new(key_mac, Naming::Nothing);
        Ok(self.channel_reads.submit(self, read)?.channel)
    }

    /// [`Self::channel_by_key_mac`] for an async task (the HTTP workers), with what the request
    /// names: a verification's one read. It waits for the grouped read without a blocking
    /// thread.
    pub async fn channel_by_key_mac_async(
        &self,
        key_mac: &[u8],
        naming: Naming<'_>,
    ) -> Result<ChannelFound, StoreError> {
        let read = ChannelRead::new(key_mac, naming);
        self.channel_reads.submit_async(self, read).await
    }

    /// The channel `id`.
    pub fn channel_by_id(&self, id: Uuid) -> Result<Option<ChannelRow>, StoreError> {
        self.run("channel_by_id", |c| {
            Ok(channels::table
                .find(id)
                .select(ChannelRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    /// Whether `destination` of `channel_id` is frozen at `now`.
    pub fn frozen(
        &self,
        channel_id: Uuid,
        destination: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        use super::schema::freezes;
        self.run("freeze_get", |c| {
            let n: i64 = freezes::table
                .filter(freezes::channel_id.eq(channel_id))
                .filter(freezes::destination.eq(destination))
                .filter(freezes::frozen_until.gt(now))
                .count()
                .get_result(c)?;
            Ok(n > 0)
        })
    }

    /// Freezes `destination` of `channel_id` until `until`.
    pub fn freeze(
        &self,
        channel_id: Uuid,
        destination: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use super::schema::freezes;
        self.run("freeze_set", |c| {
            diesel::insert_into(freezes::table)
                .values((
                    freezes::channel_id.eq(channel_id),
                    freezes::destination.eq(destination),
                    freezes::frozen_until.eq(until),
                ))
                .on_conflict((freezes::channel_id, freezes::destination))
                .do_update()
                .set(freezes::frozen_until.eq(until))
                .execute(c)?;
            Ok(())
        })
    }

    /// The channel named `name`.
    pub fn channel_by_name(&self, name: &str) -> Result<Option<ChannelRow>, StoreError> {
        self.run("channel_by_name", |c| {
            Ok(channels::table
                .filter(channels::name.eq(name))
                .select(ChannelRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    /// Every channel, by name.
    pub fn list_channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        self.run("channel_list", |c| {
            Ok(channels::table
                .order(channels::name)
                .select(ChannelRow::as_select())
                .load(c)?)
        })
    }

    /// Replaces a channel's key MAC; `None` when there is no such channel.
    pub fn set_channel_key(
        &self,
        name: &str,
        key_mac: &[u8],
        version: i32,
    ) -> Result<Option<ChannelRow>, StoreError> {
        self.update_channel(name, "channel.rotate_key", |c, name| {
            diesel::update(channels::table.filter(channels::name.eq(name)))
                .set((
                    channels::key_mac.eq(key_mac),
                    channels::key_mac_version.eq(version),
                    channels::updated_at.eq(diesel::dsl::now),
                ))
                .returning(ChannelRow::as_returning())
                .get_result(c)
                .optional()
        })
    }

    /// Disables a channel; `None` when there is no such channel.
    pub fn disable_channel(&self, name: &str) -> Result<Option<ChannelRow>, StoreError> {
        self.update_channel(name, "channel.disable", |c, name| {
            diesel::update(channels::table.filter(channels::name.eq(name)))
                .set((
                    channels::disabled.eq(true),
                    channels::updated_at.eq(diesel::dsl::now),
                ))
                .returning(ChannelRow::as_returning())
                .get_result(c)
                .optional()
        })
    }

    fn update_channel(
        &self,
        name: &str,
        action: &'static str,
        update: impl FnOnce(&mut PgConnection, &str) -> QueryResult<Option<ChannelRow>>,
    ) -> Result<Option<ChannelRow>, StoreError> {
        self.transaction("channel_update", |c| {
            let row = update(c, name)?;
            if let Some(row) = &row {
                audit::append(c, &admin_audit(row.id, action))?;
            }
            Ok(row)
        })
    }
}

fn admin_audit(channel_id: Uuid, action: &str) -> AuditEntry {
    AuditEntry {
        channel_id: Some(channel_id),
        token_id: None,
        user_id: None,
        action: action.to_owned(),
        result: "ok".to_owned(),
        moving_factor: None,
        request_id: None,
        challenge_id: None,
    }
}
