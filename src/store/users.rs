//! The user directory: per channel, a user id with a phone number and/or e-mail address.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::schema::users;
use super::{Store, StoreError};

/// A directory entry.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// Owning channel.
    pub channel_id: Uuid,
    /// The user's id in the channel's namespace.
    pub user_id: String,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Creates or replaces an entry; returns it and whether it was created.
    pub fn put_user(
        &self,
        channel_id: Uuid,
        user: &str,
        phone: Option<&str>,
        email: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(UserRow, bool), StoreError> {
        self.transaction("user_put", |c| {
            let existed = users::table
                .find((channel_id, user))
                .select(users::user_id)
                .for_update()
                .first::<String>(c)
                .optional()?
                .is_some();
            let row = diesel::insert_into(users::table)
                .values((
                    users::channel_id.eq(channel_id),
                    users::user_id.eq(user),
                    users::phone.eq(phone),
                    users::email.eq(email),
                ))
                .on_conflict((users::channel_id, users::user_id))
                .do_update()
                .set((
                    users::phone.eq(phone),
                    users::email.eq(email),
                    users::updated_at.eq(diesel::dsl::now),
                ))
                .returning(UserRow::as_returning())
                .get_result(c)?;
            audit::append(c, entry)?;
            Ok((row, !existed))
        })
    }

    /// The entry of `user` in `channel_id`.
    pub fn user(&self, channel_id: Uuid, user: &str) -> Result<Option<UserRow>, StoreError> {
        self.run("user_get", |c| {
            Ok(users::table
                .find((channel_id, user))
                .select(UserRow::as_select())
                .first(c)
                .optional()?)
        })
    }

    /// The entries of `channel_id` with this phone number.
    pub fn users_by_phone(
        &self,
        channel_id: Uuid,
        phone: &str,
    ) -> Result<Vec<UserRow>, StoreError> {
        self.run("user_by_phone", |c| {
            Ok(users::table
                .filter(users::channel_id.eq(channel_id).and(users::phone.eq(phone)))
                .order(users::user_id)
                .select(UserRow::as_select())
                .load(c)?)
        })
    }

    /// Deletes the entry; whether there was one.
    pub fn delete_user(
        &self,
        channel_id: Uuid,
        user: &str,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        self.transaction("user_delete", |c| {
            let n = diesel::delete(users::table.find((channel_id, user))).execute(c)?;
            if n > 0 {
                audit::append(c, entry)?;
            }
            Ok(n > 0)
        })
    }
}
