//! Keeps the routing table current: every replica reads every `tools.updated`
//! event (its own ordered consumer) and reloads that service from Postgres.
//! After NATS comes back from an outage it reloads everything, since events
//! may have been missed meanwhile.

use std::sync::Arc;

use futures::StreamExt;
use mcpo_core::events::{Event, ToolsChange};
use uuid::Uuid;

use crate::admission::Admission;
use crate::routing::{RouteChange, RoutingTable};
use crate::sessions::Sessions;

/// What the executor holds per service besides its route, let go of when
/// the service is gone: its sessions (which stops their stdio servers), its
/// circuit breaker and its admission gate.
pub struct Forget {
    pub sessions: Arc<Sessions>,
    pub admission: Arc<Admission>,
}

impl Forget {
    fn service(&self, service_id: Uuid) {
        self.sessions.discard(service_id);
        self.admission.forget(service_id);
    }
}

pub async fn follow(
    events: impl futures::Stream<Item = mcpo_core::events::EventEnvelope> + Send + 'static,
    mut connections: tokio::sync::watch::Receiver<u64>,
    routes: Arc<RoutingTable>,
    forget: Forget,
) {
    futures::pin_mut!(events);
    // The connection this follower started on is not a reconnection.
    connections.borrow_and_update();
    loop {
        let envelope = tokio::select! {
            envelope = events.next() => match envelope {
                Some(envelope) => envelope,
                None => break,
            },
            changed = connections.changed() => {
                if changed.is_err() {
                    break;
                }
                match routes.resync().await {
                    Ok(gone) => {
                        for id in &gone {
                            forget.service(*id);
                        }
                        tracing::info!(removed = gone.len(), "reconnected to NATS; routes reloaded from Postgres");
                    }
                    Err(e) => tracing::error!(error = %e, "reconnected to NATS but cannot reload routes"),
                }
                continue;
            }
        };
        let (service_id, service_name, deleted) = match &envelope.event {
            Event::ToolsUpdated(update) => (
                update.service_id,
                update.service_name.clone(),
                update.change == ToolsChange::Deleted,
            ),
            Event::ServiceUpdated(update) => {
                (update.service_id, update.service_name.clone(), false)
            }
            Event::ServiceRegistered(_)
            | Event::ServiceStatusChanged(_)
            | Event::OpenapiPublished(_) => continue,
        };
        if deleted {
            routes.forget(service_id);
            forget.service(service_id);
        }
        match routes.reload(&service_name).await {
            Ok(RouteChange::Removed(route)) => {
                forget.service(route.id);
                tracing::info!(service = %service_name, "route removed");
            }
            Ok(RouteChange::Upserted(route)) => {
                tracing::info!(service = %route.name, revision = route.revision, tools = route.tools.len(), "route updated");
            }
            Ok(RouteChange::Unchanged) => {}
            Err(e) => {
                tracing::error!(error = %e, service = %service_name, "cannot reload route")
            }
        }
    }
    tracing::warn!("event stream ended; routes follow Postgres look-ups only");
}
