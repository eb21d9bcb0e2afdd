//! One MCP session per service, opened on first use and shared by every call
//! to that service (rmcp multiplexes concurrent requests over it). A session
//! that broke, or belongs to an older revision of the service, is replaced on
//! the next call.
//!
//! A circuit breaker guards each service: after a failed connect, calls fail
//! at once (503 with `Retry-After`) until a delay passes, growing from 0.5 s
//! to 30 s with each failure in a row (with jitter, so replicas do not retry
//! in step); the first success closes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpo_core::mcp::{ConnectPolicy, McpError, McpSession};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::routing::ServiceRoute;

struct Slot {
    revision: i64,
    session: Arc<OnceCell<Arc<McpSession>>>,
}

struct Breaker {
    revision: i64,
    failures: u32,
    open_until: Instant,
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Connect(#[from] McpError),
    #[error("the server failed recently; retry in {retry_after:?}")]
    Open { retry_after: Duration },
}

pub struct Sessions {
    connect_timeout: Duration,
    policy: ConnectPolicy,
    slots: Mutex<HashMap<Uuid, Slot>>,
    breakers: Mutex<HashMap<Uuid, Breaker>>,
}

impl Sessions {
    pub fn new(connect_timeout: Duration, policy: ConnectPolicy) -> Self {
        Sessions {
            connect_timeout,
            policy,
            slots: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
        }
    }

    /// The live session of a service, connecting when there is none. Callers
    /// arriving while a connection is being made wait for that one.
    pub async fn get(&self, route: &ServiceRoute) -> Result<Arc<McpSession>, SessionError> {
        self.check_breaker(route)?;
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
            // Callers queued behind a failed connect see the breaker here
            // instead of each trying (and waiting) again.
            self.check_breaker(route)?;
            tracing::info!(service = %route.name, "opening MCP session");
            match McpSession::connect(
                &route.transport,
                self.connect_timeout,
                &route.name,
                &self.policy,
            )
            .await
            {
                Ok(session) => {
                    self.breakers().remove(&route.id);
                    Ok(Arc::new(session))
                }
                Err(e) => {
                    self.record_failure(route);
                    Err(SessionError::Connect(e))
                }
            }
        })
        .await
        .cloned()
    }

    fn check_breaker(&self, route: &ServiceRoute) -> Result<(), SessionError> {
        let breakers = self.breakers();
        match breakers.get(&route.id) {
            Some(b) if b.revision == route.revision && b.open_until > Instant::now() => {
                Err(SessionError::Open {
                    retry_after: b.open_until - Instant::now(),
                })
            }
            _ => Ok(()),
        }
    }

    fn record_failure(&self, route: &ServiceRoute) {
        let mut breakers = self.breakers();
        let failures = match breakers.get(&route.id) {
            Some(b) if b.revision == route.revision => b.failures + 1,
            _ => 1,
        };
        let delay = retry_delay(failures);
        tracing::warn!(service = %route.name, failures, retry_in_ms = delay.as_millis() as u64, "MCP server unreachable");
        breakers.insert(
            route.id,
            Breaker {
                revision: route.revision,
                failures,
                open_until: Instant::now() + delay,
            },
        );
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Breaker>> {
        self.breakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the session of a service; in-flight calls keep their handle and
    /// finish, the connection closes when the last one is done.
    pub fn discard(&self, service_id: Uuid) {
        self.lock().remove(&service_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// 0.5 s, 1 s, 2 s, … up to 30 s, each scaled by a jitter of 0.8 to 1.2.
fn retry_delay(failures: u32) -> Duration {
    let base = FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(LAST_RETRY);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base.mul_f64(0.8 + f64::from(nanos % 1000) / 2500.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        for failures in 1..40 {
            let delay = retry_delay(failures);
            let base = FIRST_RETRY
                .saturating_mul(1 << (failures - 1).min(10))
                .min(LAST_RETRY);
            assert!(
                delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2),
                "{failures}: {delay:?}"
            );
        }
        assert!(retry_delay(1) < Duration::from_secs(1));
        assert!(retry_delay(30) <= LAST_RETRY.mul_f64(1.2));
    }
}
