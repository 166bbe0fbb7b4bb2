//! The embedded migrations, applied by `hsm-otp migrate` (and by the test harness).

use diesel::pg::PgConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies every pending migration; returns the versions applied.
pub fn run(database_url: &str) -> Result<Vec<String>, StoreError> {
    let mut conn = PgConnection::establish(database_url)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Creates the database named in `database_url` if it does not exist (development set-up).
pub fn ensure_database(database_url: &str) -> Result<bool, StoreError> {
    use diesel::RunQueryDsl;
    let (server, name) = split_database(database_url)
        .ok_or_else(|| StoreError::Internal("cannot find the database name in the URL".into()))?;
    if PgConnection::establish(database_url).is_ok() {
        return Ok(false);
    }
    let mut admin =
        PgConnection::establish(&server).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Internal(
            "database names: letters, digits, _".into(),
        ));
    }
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .map_err(StoreError::from)?;
    Ok(true)
}

/// Splits `scheme://auth@host/name?query` into the same URL on database `postgres`, and `name`.
fn split_database(url: &str) -> Option<(String, String)> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://")? + 3;
    let slash = authority + base.get(authority..)?.find('/')?;
    let name = base.get(slash + 1..)?.to_owned();
    let mut server = format!("{}/postgres", base.get(..slash)?);
    if let Some(q) = query {
        server = format!("{server}?{q}");
    }
    (!name.is_empty()).then_some((server, name))
}

#[cfg(test)]
mod tests {
    use super::split_database;

    #[test]
    fn database_urls_are_split_into_server_and_name() {
        assert_eq!(
            split_database("postgres://u@h:5/db?sslmode=disable"),
            Some((
                "postgres://u@h:5/postgres?sslmode=disable".into(),
                "db".into()
            ))
        );
        assert_eq!(
            split_database("postgresql:///hsm?host=/var/run/postgresql"),
            Some((
                "postgresql:///postgres?host=/var/run/postgresql".into(),
                "hsm".into()
            ))
        );
    }
}
