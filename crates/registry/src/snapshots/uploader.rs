//! Writes pending snapshots to the config store, in order, one registry
//! replica at a time.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use mcpo_core::config::Settings;
use mcpo_core::db::schema::config_snapshots;
use mcpo_core::db::DbPool;
use mcpo_core::leader::Leadership;
use uuid::Uuid;

use super::latest_key;
use super::target::Target;

/// The advisory lock of the uploader, beside the keys in `mcpo_core::leader`.
pub const SNAPSHOT_UPLOADER: i64 = 0x4d43_504f_0004;

const BATCH: i64 = 50;
/// How often the leader looks for new rows (it is not woken by commits:
/// snapshots are not urgent, and other processes write rows too).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longest error message kept on a row.
const MAX_ERROR_LEN: usize = 2000;

/// Only the replica holding [`SNAPSHOT_UPLOADER`] writes, so rows go out in
/// order and `latest.json` ends with the newest.
pub struct Uploader {
    pool: DbPool,
    settings: Settings,
}

#[derive(Queryable)]
struct Pending {
    id: Uuid,
    service_name: String,
    revision: i64,
    object_key: String,
    content: serde_json::Value,
    attempts: i32,
}

impl Uploader {
    pub fn new(settings: &Settings, pool: DbPool) -> Uploader {
        Uploader {
            pool,
            settings: settings.clone(),
        }
    }

    pub async fn run(self) {
        let store = &self.settings.config_store;
        let target = Target::connect(&store.store, &self.settings.aws).await;
        tracing::info!(store = %store.store, "config snapshots go to the config store");
        let mut leadership = Leadership::new(self.pool.clone(), SNAPSHOT_UPLOADER);
        let mut backoff = store.retry_min;
        loop {
            if !leadership.hold().await {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            match self.upload_batch(&target).await {
                // More may be waiting: each batch takes one per service.
                Ok(written) if written > 0 => continue,
                Ok(_) => {
                    backoff = store.retry_min;
                    tokio::time::sleep(IDLE_POLL).await;
                }
                Err(()) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(store.retry_max);
                }
            }
        }
    }

    /// Writes the oldest pending snapshot of up to [`BATCH`] services, in
    /// order. A failure holds back the later snapshots of its own service
    /// only (so a later revision never lands before an earlier one): other
    /// services' go on, even when many of the failing one's wait. Failures
    /// are on their rows and in the log, and make the batch an `Err`
    /// (retried after the backoff).
    async fn upload_batch(&self, target: &Target) -> Result<usize, ()> {
        let rows = match self.pending().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "config snapshots: cannot read pending rows");
                return Err(());
            }
        };
        let mut written = 0;
        let mut failed = false;
        for row in rows {
            // The row is not locked while the store is slow: only the leader writes.
            let outcome = write(target, &row).await;
            if let Err(e) = self.record(&row, outcome.as_ref().err()).await {
                tracing::warn!(error = %e, "config snapshots: cannot record an upload");
                return Err(());
            }
            if let Err(error) = outcome {
                tracing::warn!(
                    service = %row.service_name,
                    revision = row.revision,
                    attempts = row.attempts + 1,
                    error = %error,
                    "config snapshot not written; retrying with backoff"
                );
                failed = true;
                continue;
            }
            written += 1;
        }
        if failed {
            Err(())
        } else {
            Ok(written)
        }
    }

    /// The oldest pending snapshot of each service (of [`BATCH`] at most),
    /// oldest first.
    async fn pending(&self) -> Result<Vec<Pending>, mcpo_core::CoreError> {
        let mut conn = self.pool.get().await?;
        let mut rows: Vec<Pending> = config_snapshots::table
            .filter(config_snapshots::uploaded_at.is_null())
            .distinct_on(config_snapshots::service_name)
            .order((config_snapshots::service_name, config_snapshots::id))
            .limit(BATCH)
            .select((
                config_snapshots::id,
                config_snapshots::service_name,
                config_snapshots::revision,
                config_snapshots::object_key,
                config_snapshots::content,
                config_snapshots::attempts,
            ))
            .load(&mut conn)
            .await?;
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    /// Counts the attempt; stamps `uploaded_at`, or keeps the error.
    async fn record(
        &self,
        row: &Pending,
        error: Option<&String>,
    ) -> Result<(), mcpo_core::CoreError> {
        let mut conn = self.pool.get().await?;
        let attempt = diesel::update(config_snapshots::table.find(row.id));
        match error {
            None => {
                attempt
                    .set((
                        config_snapshots::uploaded_at.eq(diesel::dsl::now),
                        config_snapshots::attempts.eq(config_snapshots::attempts + 1),
                    ))
                    .execute(&mut conn)
                    .await?
            }
            Some(error) => {
                let error: String = error.chars().take(MAX_ERROR_LEN).collect();
                attempt
                    .set((
                        config_snapshots::attempts.eq(config_snapshots::attempts + 1),
                        config_snapshots::last_error.eq(error),
                    ))
                    .execute(&mut conn)
                    .await?
            }
        };
        Ok(())
    }
}

/// The revision's object, then `latest.json`; both again on a retry.
async fn write(target: &Target, row: &Pending) -> Result<(), String> {
    let body = serde_json::to_vec_pretty(&row.content).map_err(|e| e.to_string())?;
    target.put(&row.object_key, body.clone()).await?;
    target.put(&latest_key(&row.service_name), body).await
}
