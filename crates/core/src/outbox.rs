//! The transactional outbox: events are stored with the change they describe
//! and published to NATS by a relay, so no committed change goes unannounced,
//! whatever NATS is doing at the time.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::db::schema::event_outbox;
use crate::db::DbPool;
use crate::error::CoreError;
use crate::events::{EventBus, EventEnvelope};
use crate::leader::{self, Leadership};

const BATCH: i64 = 100;
/// How often the leading relay looks for rows committed by other processes
/// (whose wake-ups it does not receive).
const IDLE_POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Published rows are deleted this many at a time, so one prune never holds
/// a long transaction over a large backlog.
const PRUNE_BATCH: i64 = 10_000;
/// The leading relay prunes at most this often (more often when the
/// retention is shorter).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Stores events; call inside the transaction of the change.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    envelopes: &[EventEnvelope],
) -> Result<(), diesel::result::Error> {
    for envelope in envelopes {
        let payload = serde_json::to_value(envelope)
            .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
        diesel::insert_into(event_outbox::table)
            .values((
                event_outbox::id.eq(envelope.event_id),
                event_outbox::subject.eq(envelope.event.subject_suffix()),
                event_outbox::payload.eq(payload),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// How many events are still waiting to be published.
pub async fn pending(pool: &DbPool) -> Result<i64, CoreError> {
    let mut conn = pool.get().await?;
    Ok(event_outbox::table
        .filter(event_outbox::published_at.is_null())
        .count()
        .get_result(&mut conn)
        .await?)
}

/// Deletes the rows published more than `retention` ago (NATS holds the
/// events; the table would otherwise grow with every change forever).
/// Rows not yet published are never deleted. Returns how many went.
pub async fn prune_published(pool: &DbPool, retention: Duration) -> Result<usize, CoreError> {
    // A retention reaching past the calendar's start keeps everything.
    let Some(cutoff) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| chrono::Utc::now().checked_sub_signed(retention))
    else {
        return Ok(0);
    };
    let mut conn = pool.get().await?;
    let mut deleted = 0;
    loop {
        let batch: Vec<Uuid> = event_outbox::table
            .filter(event_outbox::published_at.lt(cutoff))
            .select(event_outbox::id)
            .limit(PRUNE_BATCH)
            .load(&mut conn)
            .await?;
        if batch.is_empty() {
            return Ok(deleted);
        }
        deleted += diesel::delete(event_outbox::table.filter(event_outbox::id.eq_any(&batch)))
            .execute(&mut conn)
            .await?;
        if (batch.len() as i64) < PRUNE_BATCH {
            return Ok(deleted);
        }
    }
}

/// Publishes outbox rows. Every registry and publisher process runs one; the
/// one holding the relay lock publishes, the others wait to take over. The
/// leading one also prunes published rows older than the retention.
pub struct Relay {
    pool: DbPool,
    bus: EventBus,
    wake: Arc<Notify>,
    retention: Duration,
}

impl Relay {
    pub fn new(pool: DbPool, bus: EventBus, retention: Duration) -> Self {
        Relay {
            pool,
            bus,
            wake: Arc::new(Notify::new()),
            retention,
        }
    }

    /// Notify it after a commit to publish at once rather than on the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes while this process holds the relay lock: one relay at a
    /// time keeps events in order, since a publish that timed out stays in
    /// its NATS client's buffer and goes out, in order, on reconnect.
    pub async fn run(self) {
        let mut leadership = Leadership::new(self.pool.clone(), leader::OUTBOX_RELAY);
        let mut backoff = Duration::from_millis(100);
        let prune_every = (self.retention / 4).clamp(IDLE_POLL, PRUNE_EVERY);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if !leadership.hold().await {
                let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                continue;
            }
            match self.publish_batch().await {
                Ok(sent) if sent as i64 == BATCH => continue,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    // Caught up: pruning never delays an event.
                    if last_prune.is_none_or(|at| at.elapsed() >= prune_every) {
                        last_prune = Some(tokio::time::Instant::now());
                        match prune_published(&self.pool, self.retention).await {
                            Ok(0) => {}
                            Ok(deleted) => tracing::info!(deleted, "published outbox rows pruned"),
                            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
                        }
                    }
                    // Wakes on a commit, or polls for rows another process left.
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay cannot publish");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Publishes up to one batch in order; stops at the first failure so
    /// events are never reordered. Returns how many were published.
    async fn publish_batch(&self) -> Result<usize, CoreError> {
        let mut conn = self.pool.get().await?;
        let bus = &self.bus;
        conn.transaction(async |conn| {
            let rows: Vec<(Uuid, serde_json::Value)> = event_outbox::table
                .filter(event_outbox::published_at.is_null())
                .order(event_outbox::id)
                .limit(BATCH)
                .select((event_outbox::id, event_outbox::payload))
                .for_update()
                .skip_locked()
                .load(conn)
                .await?;
            let mut sent = 0;
            for (id, payload) in rows {
                let envelope: EventEnvelope = match serde_json::from_value(payload) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        // Unreadable (written by a newer version?): keep it, skip it, say so.
                        record_failure(conn, id, &format!("unreadable payload: {e}")).await?;
                        continue;
                    }
                };
                if let Err(e) = bus.publish(&envelope).await {
                    record_failure(conn, id, &e.to_string()).await?;
                    // Commit what was sent and the failure note, then back off.
                    return Ok(Err(e));
                }
                diesel::update(event_outbox::table.find(id))
                    .set((
                        event_outbox::published_at.eq(diesel::dsl::now),
                        event_outbox::attempts.eq(event_outbox::attempts + 1),
                    ))
                    .execute(conn)
                    .await?;
                sent += 1;
            }
            Ok::<_, CoreError>(Ok(sent))
        })
        .await?
    }
}

async fn record_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
) -> Result<(), diesel::result::Error> {
    diesel::update(event_outbox::table.find(id))
        .set((
            event_outbox::attempts.eq(event_outbox::attempts + 1),
            event_outbox::last_error.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
