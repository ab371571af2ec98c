//! Process inspection for the test *backend* of accept → parse → route → backend → respond:
//! reads `postmaster.pid` and `/proc` so crash tests can SIGKILL a server and restart it
//! without tripping over zombies or stale shared-memory segments.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What `postmaster.pid` says about a running (or crashed) postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    /// Postmaster pid (line 1).
    pub pid: u32,
    /// System V shared memory id (second number of line 7), if the server recorded one.
    pub shm_id: Option<u32>,
}

/// Parses the contents of `postmaster.pid`; None if the first line is not a pid.
pub(crate) fn parse_pid_file(text: &str) -> Option<PidFile> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let shm_id = text
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok());
    Some(PidFile { pid, shm_id })
}

/// Reads `<data>/postmaster.pid`, if present and well-formed.
pub(crate) fn read_pid_file(data: &Path) -> Option<PidFile> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    parse_pid_file(&text)
}

/// State letter and process group from the text of `/proc/<pid>/stat`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u32)> {
    // The command name is parenthesised and may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn stat_of(pid: u32) -> Option<(char, u32)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True if `pid` exists and is not a zombie (a zombie holds no sockets, files or memory).
pub(crate) fn is_alive(pid: u32) -> bool {
    matches!(stat_of(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// SIGKILLs the postmaster and, since pg_ctl makes it a process-group leader, its backends
/// too, so client connections break at once like on a real crash. Waits (bounded) until gone.
pub(crate) fn kill_postmaster(pid: u32) {
    let target = match stat_of(pid) {
        Some((_, pgrp)) if pgrp == pid => format!("-{pid}"),
        _ => pid.to_string(),
    };
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &target])
        .output();
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes a System V shared-memory segment left behind by a killed postmaster.
pub(crate) fn remove_shm(id: u32) {
    let _ = Command::new("ipcrm").args(["-m", &id.to_string()]).output();
}

#[cfg(test)]
mod tests;
