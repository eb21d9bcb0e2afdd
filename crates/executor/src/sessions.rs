//! MCP sessions, opened on first use. A service has a pool of
//! `session_pool_size` sessions shared by every caller, taken in turn (rmcp
//! multiplexes concurrent requests over each; a pool of stdio processes helps
//! servers that answer one request at a time). A `per_caller` service gives
//! each caller a session of its own instead, closed once idle for a while.
//! A session that broke, or belongs to an older revision of the service, is
//! replaced on the next call.
//!
//! A circuit breaker guards each service: after a failed connect, calls fail
//! at once (503 with `Retry-After`) until a delay passes, growing from 0.5 s
//! to 30 s with each failure in a row (with jitter, so replicas do not retry
//! in step); the first success closes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpo_core::domain::SessionScope;
use mcpo_core::mcp::{ConnectPolicy, McpError, McpSession};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::routing::ServiceRoute;

/// Which of a service's sessions a call uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    /// One of the shared pool.
    Pool(usize),
    /// A caller's own.
    Caller(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    service: Uuid,
    lane: Lane,
}

struct Slot {
    revision: i64,
    session: Arc<OnceCell<Arc<McpSession>>>,
    last_used: Instant,
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
    #[error("the service already has {limit} callers with sessions of their own")]
    TooManyCallers { limit: usize },
}

/// How sessions of `per_caller` services are bounded.
#[derive(Debug, Clone, Copy)]
pub struct CallerSessions {
    /// Sessions of one service at most, one per caller.
    pub max_per_service: usize,
    /// Closed after this long without a call.
    pub idle: Duration,
}

pub struct Sessions {
    connect_timeout: Duration,
    policy: ConnectPolicy,
    callers: CallerSessions,
    slots: Mutex<HashMap<SlotKey, Slot>>,
    breakers: Mutex<HashMap<Uuid, Breaker>>,
    /// Turns through pool lanes.
    next_lane: AtomicUsize,
}

impl Sessions {
    pub fn new(connect_timeout: Duration, policy: ConnectPolicy, callers: CallerSessions) -> Self {
        Sessions {
            connect_timeout,
            policy,
            callers,
            slots: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            next_lane: AtomicUsize::new(0),
        }
    }

    /// Closes caller sessions idle for longer than allowed; returns how many.
    pub fn close_idle(&self) -> usize {
        let idle = self.callers.idle;
        let mut slots = self.lock();
        let before = slots.len();
        slots.retain(|key, slot| {
            matches!(key.lane, Lane::Pool(_)) || slot.last_used.elapsed() < idle
        });
        before - slots.len()
    }

    fn lane(&self, route: &ServiceRoute, caller: &str) -> Lane {
        match route.session_scope {
            SessionScope::Shared => Lane::Pool(
                self.next_lane.fetch_add(1, Ordering::Relaxed) % route.session_pool_size.max(1),
            ),
            SessionScope::PerCaller => Lane::Caller(caller.to_owned()),
        }
    }

    /// A live session of a service for `caller` (the caller matters for
    /// `per_caller` services only), connecting when there is none. Callers
    /// arriving while a connection is being made wait for that one.
    pub async fn get(
        &self,
        route: &ServiceRoute,
        caller: &str,
    ) -> Result<Arc<McpSession>, SessionError> {
        self.check_breaker(route)?;
        let key = SlotKey {
            service: route.id,
            lane: self.lane(route, caller),
        };
        let cell = {
            let mut slots = self.lock();
            if matches!(key.lane, Lane::Caller(_)) && !slots.contains_key(&key) {
                let held = slots
                    .keys()
                    .filter(|k| k.service == route.id && matches!(k.lane, Lane::Caller(_)))
                    .count();
                if held >= self.callers.max_per_service {
                    return Err(SessionError::TooManyCallers {
                        limit: self.callers.max_per_service,
                    });
                }
            }
            let stale = slots.get(&key).is_none_or(|slot| {
                slot.revision != route.revision || slot.session.get().is_some_and(|s| s.is_closed())
            });
            if stale {
                slots.insert(
                    key.clone(),
                    Slot {
                        revision: route.revision,
                        session: Arc::new(OnceCell::new()),
                        last_used: Instant::now(),
                    },
                );
            }
            let slot = slots.get_mut(&key).expect("inserted above");
            slot.last_used = Instant::now();
            slot.session.clone()
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

    /// Drops a service's sessions and its circuit breaker: it is gone.
    /// In-flight calls keep their handle and finish; a connection closes
    /// when its last call is done.
    pub fn discard(&self, service_id: Uuid) {
        self.lock().retain(|key, _| key.service != service_id);
        self.breakers().remove(&service_id);
    }

    /// Drops one session (it broke); the service's others stay.
    pub fn discard_session(&self, service_id: Uuid, session: &Arc<McpSession>) {
        self.lock().retain(|key, slot| {
            key.service != service_id
                || !slot.session.get().is_some_and(|s| Arc::ptr_eq(s, session))
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SlotKey, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// 0.5 s, 1 s, 2 s, … up to 30 s, each scaled by a random jitter of 0.8 to
/// 1.2, so replicas that saw the same failure do not retry in step.
fn retry_delay(failures: u32) -> Duration {
    base_retry_delay(failures).mul_f64(0.8 + fastrand::f64() * 0.4)
}

fn base_retry_delay(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(LAST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        for failures in 1..40 {
            let delay = retry_delay(failures);
            let base = base_retry_delay(failures);
            assert!(
                delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2),
                "{failures}: {delay:?}"
            );
        }
        assert_eq!(base_retry_delay(1), FIRST_RETRY);
        assert_eq!(base_retry_delay(2), FIRST_RETRY * 2);
        assert_eq!(base_retry_delay(4), FIRST_RETRY * 8);
        assert_eq!(base_retry_delay(30), LAST_RETRY);
    }

    #[test]
    fn retry_delays_are_spread_not_in_step() {
        // Replicas that failed as often must not all wait the same time:
        // 200 draws spread over most of the ±20 % band.
        let draws: Vec<Duration> = (0..200).map(|_| retry_delay(3)).collect();
        let (least, most) = (
            draws.iter().min().unwrap().as_secs_f64(),
            draws.iter().max().unwrap().as_secs_f64(),
        );
        let base = base_retry_delay(3).as_secs_f64();
        assert!(least < base * 0.9 && most > base * 1.1, "{least} .. {most}");
    }
}
