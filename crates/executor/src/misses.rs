//! Remembers, briefly, names that Postgres did not know: a caller repeating a
//! wrong service or tool name gets its 404 from memory instead of one
//! database query per request. An event about a service forgets its misses,
//! so a registration is served as soon as its event arrives; the expiry
//! covers the moment before that.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a miss is trusted without an event.
pub const MISS_TTL: Duration = Duration::from_secs(1);
/// Bound on remembered misses: a flood of distinct names costs memory no
/// further (beyond it, misses are looked up again).
pub const MAX_MISSES: usize = 10_000;

#[derive(Default)]
pub struct Misses {
    /// Service name, or `service/tool` (a service name never holds `/`).
    seen_at: HashMap<String, Instant>,
}

impl Misses {
    pub fn service(name: &str) -> String {
        name.to_owned()
    }

    pub fn tool(service: &str, tool: &str) -> String {
        format!("{service}/{tool}")
    }

    /// Whether `key` missed within the last [`MISS_TTL`].
    pub fn recent(&self, key: &str, now: Instant) -> bool {
        self.seen_at
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < MISS_TTL)
    }

    pub fn record(&mut self, key: String, now: Instant) {
        if self.seen_at.len() >= MAX_MISSES {
            self.seen_at
                .retain(|_, at| now.duration_since(*at) < MISS_TTL);
            if self.seen_at.len() >= MAX_MISSES {
                return;
            }
        }
        self.seen_at.insert(key, now);
    }

    /// Forgets the service's misses and those of its tools.
    pub fn forget_service(&mut self, service: &str) {
        if self.seen_at.is_empty() {
            return;
        }
        self.seen_at.retain(|key, _| {
            key != service
                && !key
                    .strip_prefix(service)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
    }

    pub fn len(&self) -> usize {
        self.seen_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_trusted_until_it_expires() {
        let mut misses = Misses::default();
        let start = Instant::now();
        misses.record(Misses::service("ghost"), start);
        assert!(misses.recent("ghost", start + MISS_TTL / 2));
        assert!(!misses.recent("ghost", start + MISS_TTL));
        assert!(!misses.recent("other", start));
    }

    #[test]
    fn forgetting_a_service_forgets_its_tools_but_not_its_neighbours() {
        let mut misses = Misses::default();
        let now = Instant::now();
        for key in [
            Misses::service("web"),
            Misses::tool("web", "x"),
            Misses::service("web2"),
            Misses::tool("web2", "x"),
        ] {
            misses.record(key, now);
        }
        misses.forget_service("web");
        assert!(!misses.recent("web", now));
        assert!(!misses.recent("web/x", now));
        assert!(misses.recent("web2", now));
        assert!(misses.recent("web2/x", now));
    }

    #[test]
    fn the_number_of_misses_is_bounded() {
        let mut misses = Misses::default();
        let start = Instant::now();
        for i in 0..MAX_MISSES + 10 {
            misses.record(Misses::service(&format!("s{i}")), start);
        }
        assert_eq!(misses.len(), MAX_MISSES);
        // Expired entries make room again.
        misses.record(Misses::service("late"), start + MISS_TTL);
        assert_eq!(misses.len(), 1);
        assert!(misses.recent("late", start + MISS_TTL));
    }
}
