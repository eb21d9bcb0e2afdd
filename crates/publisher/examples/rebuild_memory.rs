//! The memory a rebuild of 1,000 services of 10 tools each takes, on the path
//! `Publisher::rebuild` takes besides Postgres, and what the served
//! renderings hold after it. Linux only (reads `/proc/self/status`).
//! `cargo run --release -p mcpo-publisher --example rebuild_memory`

#[path = "../tests/common/platform.rs"]
mod platform;
#[path = "../tests/common/records.rs"]
mod records;

use std::time::Instant;

use mcpo_publisher::published;

// As the publisher's binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A `/proc/self/status` field, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let services = platform::platform();
    let url = platform::EXECUTOR_URL;
    let authorizer = platform::authorizer();
    let before = status_kib("VmRSS:");
    // Resets VmHWM to the current RSS, so the peak is the rebuild's.
    std::fs::write("/proc/self/clear_refs", "5").expect("Linux /proc");
    let started = Instant::now();
    let rendered = published::render(1, published::prepare(&services, url, Some(&authorizer)));
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    let after = status_kib("VmRSS:");
    // Services' documents are made on first request.
    let held = rendered.json.bytes.len() + rendered.aws.bytes.len();
    // The allocator gives freed pages back to the system after a delay.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle = status_kib("VmRSS:");
    println!(
        "rebuild {elapsed:?}; RSS with the records {} MiB, peak {} MiB (+{}), after {} MiB (+{}), \
         2 s later {} MiB (+{}); renderings held {} MiB",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024,
        idle / 1024,
        idle.saturating_sub(before) / 1024,
        held >> 20
    );
}
