//! Database access shared by every service: the pool, the embedded migrations
//! and the queries more than one service needs.

pub mod models;
pub mod queries;
pub mod schema;

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;
use crate::error::CoreError;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;
pub use diesel_async::pooled_connection::deadpool::PoolError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Builds the pool every service uses. Connections are created lazily; each one
/// gets a `statement_timeout` so a stuck query cannot hold a request forever,
/// and an `application_name` so `pg_stat_activity` tells the services apart.
pub fn build_pool(
    settings: &DatabaseSettings,
    application_name: &str,
) -> Result<DbPool, CoreError> {
    let mut manager_config = ManagerConfig::default();
    let statement_timeout_ms = settings.statement_timeout.as_millis();
    let application_name = application_name.to_owned();
    manager_config.custom_setup = Box::new(move |url| {
        let application_name = application_name.clone();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            let setup = format!(
                "SET statement_timeout = {statement_timeout_ms}; SET application_name = '{}'",
                application_name.replace('\'', "")
            );
            conn.batch_execute(&setup)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.url.expose_secret(),
        manager_config,
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| CoreError::Internal(format!("cannot build the database pool: {e}")))
}

/// Applies pending migrations. Runs on a blocking thread because diesel's
/// migration harness is synchronous.
pub async fn run_migrations(
    database_url: &secrecy::SecretString,
) -> Result<Vec<String>, CoreError> {
    let url = database_url.expose_secret().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(|e| CoreError::DatabaseUnavailable(e.to_string()))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| CoreError::Internal(format!("migration failed: {e}")))?;
        Ok(applied.iter().map(|m| m.to_string()).collect())
    })
    .await
    .map_err(|e| CoreError::Internal(format!("migration task failed: {e}")))?
}

/// Creates the database named in `url` when it does not exist, connecting to the
/// `postgres` maintenance database of the same server. Used by `mcpo up` so a
/// newcomer needs no manual `createdb`.
pub async fn create_database_if_missing(
    database_url: &secrecy::SecretString,
) -> Result<bool, CoreError> {
    let mut url = url::Url::parse(database_url.expose_secret())
        .map_err(|e| CoreError::Config(format!("DATABASE_URL is not a URL: {e}")))?;
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() || name == "postgres" {
        return Ok(false);
    }
    url.set_path("/postgres");
    let mut conn = AsyncPgConnection::establish(url.as_str())
        .await
        .map_err(|e| CoreError::DatabaseUnavailable(e.to_string()))?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut conn)
            .await?;
    if found.exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(format!("CREATE DATABASE {quoted}"))
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(true),
        // Another process created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) if e.to_string().contains("already exists") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Checks the database answers, for `/readyz`.
pub async fn ping(pool: &DbPool) -> Result<(), CoreError> {
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

pub(crate) const fn default_statement_timeout() -> Duration {
    Duration::from_secs(10)
}
