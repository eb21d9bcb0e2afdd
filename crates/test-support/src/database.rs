//! A database per test, cloned from a template that has every migration
//! applied. The template is built once per migration set (named by its hash),
//! under an advisory lock so parallel test processes build it only once.

use std::time::{SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

const PREFIX: &str = "mcpo_test_";
/// Databases of crashed runs older than this are dropped by the next run.
const LEFTOVER_AGE_SECS: u64 = 3600;

pub fn server_url() -> String {
    std::env::var("MCPO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(database: &str) -> String {
    let mut url = url::Url::parse(&server_url()).expect("MCPO_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    url.to_string()
}

pub struct TestDatabase {
    pub name: String,
    pub url: SecretString,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let template = ensure_template().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&server_url()).await;
        exec(
            &mut admin,
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        )
        .await;
        TestDatabase {
            url: SecretString::from(url_for(&name)),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime we may block; use a thread of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = connect(&server_url()).await;
                exec(
                    &mut admin,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                )
                .await;
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("tests need PostgreSQL at {url}: {e}"))
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

/// Hashes the migrations compiled into this binary (what `run_migrations`
/// applies) by name, with their SQL as it is on disk: a test binary built
/// before a migration was added must not build, or use, a template named
/// for the newer set, and an edited migration needs a new template.
fn migrations_hash() -> String {
    use diesel::migration::MigrationSource;
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"));
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&mcpo_core::db::MIGRATIONS)
        .expect("the embedded migrations are readable");
    let mut hasher = Sha256::new();
    for migration in migrations {
        let name = migration.name().to_string();
        hasher.update(name.as_bytes());
        for file in ["up.sql", "down.sql"] {
            hasher.update(std::fs::read(dir.join(&name).join(file)).unwrap_or_default());
        }
    }
    hex::encode(&hasher.finalize()[..6])
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

async fn ensure_template() -> String {
    let template = format!("mcpo_template_{}", migrations_hash());
    let mut admin = connect(&server_url()).await;
    exec(&mut admin, "SELECT pg_advisory_lock(775533)").await;
    let existing: Vec<Name> = diesel::sql_query(format!("SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%' OR datname LIKE 'mcpo_template_%'"))
        .load(&mut admin)
        .await
        .unwrap();
    if !existing.iter().any(|d| d.datname == template) {
        let building = format!("{template}_building");
        exec(
            &mut admin,
            &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
        )
        .await;
        exec(&mut admin, &format!("CREATE DATABASE \"{building}\"")).await;
        mcpo_core::db::run_migrations(&SecretString::from(url_for(&building)))
            .await
            .expect("migrations apply to a fresh database");
        exec(
            &mut admin,
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""),
        )
        .await;
    }
    sweep(&mut admin, &existing, &template).await;
    exec(&mut admin, "SELECT pg_advisory_unlock(775533)").await;
    template
}

/// Drops test databases of crashed runs and templates of older migration sets.
async fn sweep(admin: &mut AsyncPgConnection, existing: &[Name], template: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for db in existing {
        let stale = match db.datname.strip_prefix(PREFIX) {
            Some(rest) => rest
                .split('_')
                .next()
                .and_then(|secs| secs.parse::<u64>().ok())
                .is_some_and(|created| now.saturating_sub(created) > LEFTOVER_AGE_SECS),
            None => db.datname != template && !db.datname.ends_with("_building"),
        };
        if stale {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                db.datname
            ))
            .execute(admin)
            .await;
        }
    }
}
