//! Waiting for what happens asynchronously (events, monitors, restarts)
//! without timing assertions: poll until it holds, give up after a bound
//! generous enough for a loaded CI machine.

use std::time::Duration;

const BOUND: Duration = Duration::from_secs(15);
const PAUSE: Duration = Duration::from_millis(100);

/// Calls `probe` until it returns `Ok`; panics after about 15 s with `what`
/// and the last `Err`, which should describe the state seen.
pub async fn eventually<T, E: std::fmt::Debug>(
    what: &str,
    probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    eventually_within(what, BOUND, probe).await
}

/// `eventually` with another bound, for what retries with backoff.
pub async fn eventually_within<T, E: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let mut last = None;
    for _ in 0..(bound.as_millis() / PAUSE.as_millis()).max(1) {
        match probe().await {
            Ok(value) => return value,
            Err(state) => last = Some(state),
        }
        tokio::time::sleep(PAUSE).await;
    }
    panic!("timed out waiting until {what}; last seen: {last:#?}");
}
