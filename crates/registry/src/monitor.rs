//! The status monitor: checks every enabled service on an interval (connect,
//! initialize, ping), records what it saw, and announces status changes.
//! One registry replica runs it at a time: the one holding a Postgres
//! advisory lock on a connection it keeps.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
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

const PARALLEL_CHECKS: usize = 8;

pub struct Monitor {
    pub pool: DbPool,
    pub interval: Duration,
    pub outbox_wake: Arc<Notify>,
    pub policy: ConnectPolicy,
    pub secret_keys: Option<SecretKeyring>,
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
        loop {
            ticks.tick().await;
            if !leadership.hold().await {
                continue;
            }
            if let Err(e) = self.check_all().await {
                tracing::warn!(error = %e, "status check round failed");
            }
        }
    }

    async fn check_all(&self) -> Result<(), CoreError> {
        let services: Vec<ServiceRow> = mcp_services::table
            .filter(mcp_services::status.ne(ServiceStatus::Disabled.as_str()))
            .select(ServiceRow::as_select())
            .load(&mut *self.pool.get().await?)
            .await?;
        let timeout =
            (self.interval / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
        futures::stream::iter(services)
            .for_each_concurrent(PARALLEL_CHECKS, |service| async move {
                let observation = match self.transport_of(&service) {
                    Ok(transport) => check(&transport, timeout, &service.name, &self.policy).await,
                    Err(e) => Observation {
                        status: ServiceStatus::Degraded,
                        error: Some(format!("unreadable transport: {e}")),
                    },
                };
                if let Err(e) = self.record(&service, &observation).await {
                    tracing::warn!(service = %service.name, error = %e, "cannot record status");
                }
            })
            .await;
        Ok(())
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

/// Unreachable when it cannot be started, reached or initialized; degraded
/// when it initializes but does not answer a ping; active otherwise.
pub async fn check(
    transport: &TransportConfig,
    timeout: Duration,
    label: &str,
    policy: &ConnectPolicy,
) -> Observation {
    let session = match McpSession::connect(transport, timeout, label, policy).await {
        Ok(session) => session,
        Err(e) => {
            return Observation {
                status: ServiceStatus::Unreachable,
                error: Some(e.to_string()),
            }
        }
    };
    let pinged = session.ping(timeout).await;
    session.close().await;
    match pinged {
        Ok(()) => Observation {
            status: ServiceStatus::Active,
            error: None,
        },
        Err(e @ (McpError::Closed | McpError::Spawn { .. })) => Observation {
            status: ServiceStatus::Unreachable,
            error: Some(e.to_string()),
        },
        Err(e) => Observation {
            status: ServiceStatus::Degraded,
            error: Some(e.to_string()),
        },
    }
}
