//! Backpressure: how many calls may run at once, per service, per caller and
//! overall, and how many may wait for a service. Past a bound a call is
//! refused at once (429 for a caller over its share, 503 when a service or
//! the executor is full) instead of queueing without end: memory stays
//! bounded and a slow service cannot take the capacity of the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpo_core::config::CallLimits as Limits;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this caller already has {limit} calls in flight; retry when some have finished")]
    CallerLimit { limit: usize },
    #[error("service `{service}` has {waiting} calls waiting already")]
    ServiceQueueFull { service: String, waiting: usize },
    #[error("service `{service}` stayed busy for {waited:?}; no capacity became free")]
    ServiceBusy { service: String, waited: Duration },
    #[error("the executor is at its limit of {limit} calls in flight")]
    Overloaded { limit: usize },
    #[error("service `{service}` already has sessions for {limit} callers; retry when some have gone idle")]
    TooManySessions { service: String, limit: usize },
}

struct ServiceGate {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

pub struct Admission {
    limits: Limits,
    overall: Arc<Semaphore>,
    services: Mutex<HashMap<Uuid, Arc<ServiceGate>>>,
    callers: Arc<Mutex<HashMap<String, usize>>>,
}

/// Held while a call runs; dropping it frees its places.
pub struct Permit {
    _service: OwnedSemaphorePermit,
    _overall: OwnedSemaphorePermit,
    _caller: CallerSlot,
}

struct CallerSlot {
    callers: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut callers = self.callers.lock().expect("not poisoned");
        if let Some(count) = callers.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                callers.remove(&self.caller);
            }
        }
    }
}

/// Counts one waiter for as long as it exists, so a cancelled wait (the
/// client went away) gives its place back too.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            overall: Arc::new(Semaphore::new(limits.overall.max(1))),
            services: Mutex::new(HashMap::new()),
            callers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Waits at most `wait` for room on the service; everything else is
    /// decided at once.
    pub async fn admit(
        &self,
        service_id: Uuid,
        service: &str,
        caller: &str,
        wait: Duration,
    ) -> Result<Permit, Refusal> {
        let caller_slot = self.take_caller_slot(caller)?;
        let gate = self.gate(service_id);
        let service_permit = match gate.running.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = gate.waiting.fetch_add(1, Ordering::SeqCst);
                let _waiting = Waiting(&gate.waiting);
                if waiting >= self.limits.per_service_queue {
                    return Err(Refusal::ServiceQueueFull {
                        service: service.to_owned(),
                        waiting,
                    });
                }
                match tokio::time::timeout(wait, gate.running.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        return Err(Refusal::ServiceBusy {
                            service: service.to_owned(),
                            waited: wait,
                        })
                    }
                }
            }
        };
        let overall =
            self.overall
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::Overloaded {
                    limit: self.limits.overall,
                })?;
        Ok(Permit {
            _service: service_permit,
            _overall: overall,
            _caller: caller_slot,
        })
    }

    /// Forgets a deleted service's gate (calls holding its permits finish).
    pub fn forget(&self, service_id: Uuid) {
        self.services
            .lock()
            .expect("not poisoned")
            .remove(&service_id);
    }

    fn gate(&self, service_id: Uuid) -> Arc<ServiceGate> {
        self.services
            .lock()
            .expect("not poisoned")
            .entry(service_id)
            .or_insert_with(|| {
                Arc::new(ServiceGate {
                    running: Arc::new(Semaphore::new(self.limits.per_service.max(1))),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    fn take_caller_slot(&self, caller: &str) -> Result<CallerSlot, Refusal> {
        let mut callers = self.callers.lock().expect("not poisoned");
        let count = callers.entry(caller.to_owned()).or_insert(0);
        if *count >= self.limits.per_caller {
            return Err(Refusal::CallerLimit {
                limit: self.limits.per_caller,
            });
        }
        *count += 1;
        Ok(CallerSlot {
            callers: self.callers.clone(),
            caller: caller.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            overall: 3,
            per_service: 1,
            per_service_queue: 1,
            per_caller: 2,
        }
    }

    const NO_WAIT: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_caller_over_its_share_is_refused_and_gets_its_slots_back() {
        let admission = Admission::new(limits());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = admission.admit(a, "a", "alice", NO_WAIT).await.unwrap();
        let second = admission.admit(b, "b", "alice", NO_WAIT).await.unwrap();
        let third = admission.admit(Uuid::now_v7(), "c", "alice", NO_WAIT).await;
        assert!(matches!(third, Err(Refusal::CallerLimit { limit: 2 })));
        // Another caller is not affected.
        let other = admission.admit(Uuid::now_v7(), "c", "bob", NO_WAIT).await;
        assert!(other.is_ok());
        drop((first, second));
        assert!(admission.admit(a, "a", "alice", NO_WAIT).await.is_ok());
        assert!(admission.callers.lock().unwrap().get("alice").is_none());
    }

    #[tokio::test]
    async fn a_full_service_queues_a_bounded_number_then_refuses() {
        let admission = Arc::new(Admission::new(limits()));
        let service = Uuid::now_v7();
        let running = admission.admit(service, "s", "c1", NO_WAIT).await.unwrap();
        // One may wait; it gets the place when the running call ends.
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move {
                admission
                    .admit(service, "s", "c2", Duration::from_secs(60))
                    .await
                    .is_ok()
            })
        };
        while admission.gate(service).waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = admission.admit(service, "s", "c3", NO_WAIT).await;
        assert!(matches!(refused, Err(Refusal::ServiceQueueFull { .. })));
        drop(running);
        assert!(waiter.await.unwrap());
        assert_eq!(admission.gate(service).waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn waiting_too_long_is_refused_and_leaves_no_waiter_behind() {
        let admission = Admission::new(limits());
        let service = Uuid::now_v7();
        let _running = admission.admit(service, "s", "c1", NO_WAIT).await.unwrap();
        let refused = admission.admit(service, "s", "c2", NO_WAIT).await;
        assert!(matches!(refused, Err(Refusal::ServiceBusy { .. })));
        assert_eq!(admission.gate(service).waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_executor_wide_limit_holds_across_services() {
        let admission = Admission::new(limits());
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(
                admission
                    .admit(Uuid::now_v7(), "s", &format!("c{i}"), NO_WAIT)
                    .await
                    .unwrap(),
            );
        }
        let refused = admission.admit(Uuid::now_v7(), "s", "c9", NO_WAIT).await;
        assert!(matches!(refused, Err(Refusal::Overloaded { limit: 3 })));
    }

    #[tokio::test]
    async fn a_forgotten_service_leaves_no_gate_behind() {
        let admission = Admission::new(limits());
        let (gone, stays) = (Uuid::now_v7(), Uuid::now_v7());
        let in_flight = admission.admit(gone, "gone", "c1", NO_WAIT).await.unwrap();
        let _other = admission
            .admit(stays, "stays", "c2", NO_WAIT)
            .await
            .unwrap();
        admission.forget(gone);
        let gates = admission.services.lock().unwrap();
        assert!(!gates.contains_key(&gone));
        assert!(gates.contains_key(&stays));
        drop(gates);
        drop(in_flight);
    }
}
