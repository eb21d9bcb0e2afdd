//! What `/proc` says of the processes a test started.

/// The parent pid and state letter of `pid`, while it exists.
pub fn stat(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

/// Whether `pid` exists and is not a zombie.
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z')
}

pub fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect()
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
}
