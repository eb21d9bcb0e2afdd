//! Keeps the routing table current: every replica reads every `tools.updated`
//! event (its own ordered consumer) and reloads that service from Postgres.
//! After NATS comes back from an outage it reloads everything, since events
//! may have been missed meanwhile.

use std::sync::Arc;

use futures::StreamExt;
use mcpo_core::events::{Event, ToolsChange};

use crate::routing::{RouteChange, RoutingTable};
use crate::sessions::Sessions;

pub async fn follow(
    events: impl futures::Stream<Item = mcpo_core::events::EventEnvelope> + Send + 'static,
    mut connections: tokio::sync::watch::Receiver<u64>,
    routes: Arc<RoutingTable>,
    sessions: Arc<Sessions>,
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
                            sessions.discard(*id);
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
            sessions.discard(service_id);
        }
        match routes.reload(&service_name).await {
            Ok(RouteChange::Removed(route)) => {
                sessions.discard(route.id);
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
