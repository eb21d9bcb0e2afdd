//! One MCP session per service, opened on first use and shared by every call
//! to that service (rmcp multiplexes concurrent requests over it). A session
//! that broke, or belongs to an older revision of the service, is replaced on
//! the next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpo_core::mcp::{McpError, McpSession};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::routing::ServiceRoute;

struct Slot {
    revision: i64,
    session: Arc<OnceCell<Arc<McpSession>>>,
}

pub struct Sessions {
    connect_timeout: Duration,
    slots: Mutex<HashMap<Uuid, Slot>>,
}

impl Sessions {
    pub fn new(connect_timeout: Duration) -> Self {
        Sessions {
            connect_timeout,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The live session of a service, connecting when there is none. Callers
    /// arriving while a connection is being made wait for that one.
    pub async fn get(&self, route: &ServiceRoute) -> Result<Arc<McpSession>, McpError> {
        let cell = {
            let mut slots = self.lock();
            let stale = slots.get(&route.id).is_none_or(|slot| {
                slot.revision != route.revision || slot.session.get().is_some_and(|s| s.is_closed())
            });
            if stale {
                slots.insert(
                    route.id,
                    Slot {
                        revision: route.revision,
                        session: Arc::new(OnceCell::new()),
                    },
                );
            }
            slots[&route.id].session.clone()
        };
        cell.get_or_try_init(|| async {
            tracing::info!(service = %route.name, "opening MCP session");
            McpSession::connect(&route.transport, self.connect_timeout, &route.name)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    /// Drops the session of a service; in-flight calls keep their handle and
    /// finish, the connection closes when the last one is done.
    pub fn discard(&self, service_id: Uuid) {
        self.lock().remove(&service_id);
    }

    /// Closes every session (shutdown).
    pub async fn close_all(&self) {
        let slots: Vec<Slot> = self.lock().drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            if let Some(session) = Arc::into_inner(slot.session).and_then(OnceCell::into_inner) {
                if let Some(session) = Arc::into_inner(session) {
                    session.close().await;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
