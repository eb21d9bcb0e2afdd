//! One process at a time for work that must not run twice (the outbox relay,
//! the status monitor): a Postgres advisory lock held on a connection kept out
//! of the pool. When the holder dies its session ends and the lock is free.

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::db::{DbConn, DbPool};

/// Keys of the advisory locks MCPO takes, one per kind of work.
pub const OUTBOX_RELAY: i64 = 0x4d43_504f_0003;
pub const STATUS_MONITOR: i64 = 0x4d43_504f_0001;

pub struct Leadership {
    pool: DbPool,
    key: i64,
    held: Option<DbConn>,
}

impl Leadership {
    pub fn new(pool: DbPool, key: i64) -> Self {
        Leadership {
            pool,
            key,
            held: None,
        }
    }

    /// Keeps the lock, or tries to take it; `false` means another process
    /// leads (or the database is away) and the caller should wait.
    pub async fn hold(&mut self) -> bool {
        if let Some(conn) = self.held.as_mut() {
            if diesel::sql_query("SELECT 1")
                .execute(&mut **conn)
                .await
                .is_ok()
            {
                return true;
            }
            self.held = None;
        }
        let Ok(mut conn) = self.pool.get().await else {
            return false;
        };
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        let locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(self.key)
            .get_result::<Locked>(&mut *conn)
            .await
            .is_ok_and(|l| l.locked);
        if locked {
            // Detached from the pool: the lock lives as long as this connection.
            self.held = Some(conn);
        }
        locked
    }
}
