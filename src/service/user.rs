//! The user directory: who a code can be sent to.

use super::{audit, Caller, Error, Missing, Services};
use crate::domain::{E164Phone, Email};
use crate::store::UserRow;

/// A directory entry as the services show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    /// The user's id.
    pub user: String,
    /// E.164 phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            user: r.user_id,
            phone: r.phone,
            email: r.email,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Services {
    /// Creates or replaces `user` with a phone number and/or e-mail address; returns the
    /// entry and whether it was created.
    pub fn put_user(
        &self,
        caller: &Caller,
        user: &str,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<(User, bool), Error> {
        if !super::token::valid_user(user) {
            return Err(Error::InvalidRequest("user"));
        }
        let phone = phone
            .map(|p| E164Phone::parse(p).ok_or(Error::InvalidRequest("phone")))
            .transpose()?;
        let email = email
            .map(|e| Email::parse(e).ok_or(Error::InvalidRequest("email")))
            .transpose()?;
        let mut entry = audit(caller, None, "user.put", "ok");
        entry.user_id = Some(user.to_owned());
        let (row, created) = self.store.put_user(
            caller.channel.id,
            user,
            phone.as_ref().map(E164Phone::as_str),
            email.as_ref().map(Email::as_str),
            &entry,
        )?;
        Ok((row.into(), created))
    }

    /// The entry of `user`.
    pub fn user(&self, caller: &Caller, user: &str) -> Result<User, Error> {
        self.store
            .user(caller.channel.id, user)?
            .map(User::from)
            .ok_or(Error::NotFound(Missing::User))
    }

    /// The entries whose phone number is `phone` (normalised first).
    pub fn users_by_phone(&self, caller: &Caller, phone: &str) -> Result<Vec<User>, Error> {
        let phone = E164Phone::parse(phone).ok_or(Error::InvalidRequest("phone"))?;
        let rows = self
            .store
            .users_by_phone(caller.channel.id, phone.as_str())?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Deletes `user`'s entry.
    pub fn delete_user(&self, caller: &Caller, user: &str) -> Result<(), Error> {
        let mut entry = audit(caller, None, "user.delete", "ok");
        entry.user_id = Some(user.to_owned());
        if self.store.delete_user(caller.channel.id, user, &entry)? {
            Ok(())
        } else {
            Err(Error::NotFound(Missing::User))
        }
    }
}
