//! The status monitor: checks every enabled service on an interval (connect,
//! initialize, ping), records what it saw, and announces status changes.
//! One registry replica runs it at a time: the one holding a Postgres
//! advisory lock on a connection it keeps.
//!
//! A server that declares `tools.listChanged` keeps its session open between
//! rounds (the next round pings it instead of connecting again): that session
//! is where `notifications/tools/list_changed` arrives, and each one makes the
//! registry re-list the service's tools, which emits `tools.updated` when they
//! differ.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use mcpo_core::auth::Caller;
use mcpo_core::db::models::ServiceRow;
use mcpo_core::db::schema::mcp_services;
use mcpo_core::db::DbPool;
use mcpo_core::domain::{ServiceStatus, TransportConfig};
use mcpo_core::events::{Event, EventEnvelope, ServiceStatusChanged};
use mcpo_core::leader::{self, Leadership};
use mcpo_core::mcp::{ConnectPolicy, McpError, McpSession};
use mcpo_core::secrets::SecretKeyring;
use mcpo_core::{outbox, CoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Registry;

const PARALLEL_CHECKS: usize = 8;

pub struct Monitor {
    pub pool: DbPool,
    pub interval: Duration,
    pub outbox_wake: Arc<Notify>,
    pub policy: ConnectPolicy,
    pub secret_keys: Option<SecretKeyring>,
    /// Re-lists tools when a watched server announces a change.
    pub registry: Arc<Registry>,
}

/// A session kept open to a server that announces tool-list changes.
struct Watch {
    /// The stored transport it was opened with: a changed one ends the watch.
    transport: serde_json::Value,
    session: Arc<McpSession>,
    listener: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub status: ServiceStatus,
    pub error: Option<String>,
}

impl Monitor {
    pub async fn run(self) {
        let mut leadership = Leadership::new(self.pool.clone(), leader::STATUS_MONITOR);
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watches = HashMap::new();
        loop {
            ticks.tick().await;
            if !leadership.hold().await {
                // The new leader watches now.
                watches.clear();
                continue;
            }
            if let Err(e) = self.check_all(&mut watches).await {
                tracing::warn!(error = %e, "status check round failed");
            }
        }
    }

    async fn check_all(&self, watches: &mut HashMap<Uuid, Watch>) -> Result<(), CoreError> {
        let services: Vec<ServiceRow> = mcp_services::table
            .filter(mcp_services::status.ne(ServiceStatus::Disabled.as_str()))
            .select(ServiceRow::as_select())
            .load(&mut *self.pool.get().await?)
            .await?;
        // Deleted, disabled or re-pointed services are not watched any more.
        watches.retain(|id, watch| {
            services
                .iter()
                .any(|s| s.id == *id && s.transport == watch.transport)
        });
        let timeout =
            (self.interval / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
        let watched: HashMap<Uuid, Arc<McpSession>> = watches
            .iter()
            .map(|(id, watch)| (*id, watch.session.clone()))
            .collect();
        let outcomes: Vec<(ServiceRow, Option<Arc<McpSession>>)> = futures::stream::iter(services)
            .map(|service| {
                let watched = watched.get(&service.id).cloned();
                async move {
                    let (observation, session) = self.check_one(&service, watched, timeout).await;
                    if let Err(e) = self.record(&service, &observation).await {
                        tracing::warn!(service = %service.name, error = %e, "cannot record status");
                    }
                    (service, session)
                }
            })
            .buffer_unordered(PARALLEL_CHECKS)
            .collect()
            .await;
        for (service, session) in outcomes {
            let Some(session) = session else {
                watches.remove(&service.id);
                continue;
            };
            if watches
                .get(&service.id)
                .is_some_and(|w| Arc::ptr_eq(&w.session, &session))
            {
                continue;
            }
            // A new watch: changes made while nobody watched are picked up
            // by re-listing once now.
            let changes = session.tool_list_changes();
            changes.notify_one();
            let listener = tokio::spawn(relist_on_change(
                self.registry.clone(),
                service.name.clone(),
                changes,
            ));
            watches.insert(
                service.id,
                Watch {
                    transport: service.transport.clone(),
                    session,
                    listener,
                },
            );
        }
        Ok(())
    }

    /// Pings the watched session if there is one, connects otherwise. Gives
    /// back the session to keep watching, if the server announces changes.
    async fn check_one(
        &self,
        service: &ServiceRow,
        watched: Option<Arc<McpSession>>,
        timeout: Duration,
    ) -> (Observation, Option<Arc<McpSession>>) {
        if let Some(session) = watched {
            if session.ping(timeout).await.is_ok() {
                return (ACTIVE, Some(session));
            }
            // A broken watch says little about the server: connect afresh.
        }
        let transport = match self.transport_of(service) {
            Ok(transport) => transport,
            Err(e) => {
                let observation = Observation {
                    status: ServiceStatus::Degraded,
                    error: Some(format!("unreadable transport: {e}")),
                };
                return (observation, None);
            }
        };
        let (observation, session) = probe(&transport, timeout, &service.name, &self.policy).await;
        match session {
            Some(session) if session.announces_tool_changes() => {
                (observation, Some(Arc::new(session)))
            }
            Some(session) => {
                session.close().await;
                (observation, None)
            }
            None => (observation, None),
        }
    }

    fn transport_of(&self, service: &ServiceRow) -> Result<TransportConfig, String> {
        let stored: TransportConfig =
            serde_json::from_value(service.transport.clone()).map_err(|e| e.to_string())?;
        match &self.secret_keys {
            Some(keys) => keys.open_transport(&stored).map_err(|e| e.to_string()),
            None => Ok(stored),
        }
    }

    /// Stores the observation; on a status change also the event, in the same
    /// transaction. A service disabled meanwhile is left alone.
    async fn record(
        &self,
        service: &ServiceRow,
        observation: &Observation,
    ) -> Result<(), CoreError> {
        let mut conn = self.pool.get().await?;
        let status = observation.status.as_str();
        let reached = observation.status != ServiceStatus::Unreachable;
        let changed = (*conn)
            .transaction(async |conn: &mut AsyncPgConnection| {
                let previous: Option<String> = mcp_services::table
                    .find(service.id)
                    .select(mcp_services::status)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some(previous) = previous.filter(|p| p != ServiceStatus::Disabled.as_str())
                else {
                    return Ok::<_, CoreError>(false);
                };
                let now = Utc::now();
                diesel::update(mcp_services::table.find(service.id))
                    .set((
                        mcp_services::status.eq(status),
                        mcp_services::last_error.eq(observation.error.as_deref()),
                        mcp_services::last_checked_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                if reached {
                    diesel::update(mcp_services::table.find(service.id))
                        .set(mcp_services::last_seen_at.eq(now))
                        .execute(conn)
                        .await?;
                }
                if previous == status {
                    return Ok(false);
                }
                let event = EventEnvelope::new(Event::ServiceStatusChanged(ServiceStatusChanged {
                    service_id: service.id,
                    service_name: service.name.clone(),
                    previous,
                    status: status.to_owned(),
                    last_error: observation.error.clone(),
                }));
                outbox::enqueue(conn, &[event]).await?;
                Ok(true)
            })
            .await?;
        if changed {
            tracing::info!(service = %service.name, status, error = ?observation.error, "service status changed");
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

const ACTIVE: Observation = Observation {
    status: ServiceStatus::Active,
    error: None,
};

/// Unreachable when it cannot be started, reached or initialized; degraded
/// when it initializes but does not answer a ping; active otherwise. The
/// session comes back when the ping answered.
async fn probe(
    transport: &TransportConfig,
    timeout: Duration,
    label: &str,
    policy: &ConnectPolicy,
) -> (Observation, Option<McpSession>) {
    let session = match McpSession::connect(transport, timeout, label, policy).await {
        Ok(session) => session,
        Err(e) => {
            let observation = Observation {
                status: ServiceStatus::Unreachable,
                error: Some(e.to_string()),
            };
            return (observation, None);
        }
    };
    let pinged = session.ping(timeout).await;
    let status = match &pinged {
        Ok(()) => return (ACTIVE, Some(session)),
        Err(McpError::Closed | McpError::Spawn { .. }) => ServiceStatus::Unreachable,
        Err(_) => ServiceStatus::Degraded,
    };
    session.close().await;
    let observation = Observation {
        status,
        error: pinged.err().map(|e| e.to_string()),
    };
    (observation, None)
}

/// Re-lists the service's tools each time its server announces a change
/// (a burst while one re-list runs is one more re-list).
async fn relist_on_change(registry: Arc<Registry>, name: String, changes: Arc<Notify>) {
    let caller = Caller::system("status-monitor");
    loop {
        changes.notified().await;
        match registry.refresh(&name, &caller).await {
            Ok(outcome) => {
                tracing::info!(service = %name, changed = outcome.changed, "re-listed tools on the server's notice")
            }
            Err(e) => tracing::warn!(service = %name, error = %e, "cannot re-list tools"),
        }
    }
}
