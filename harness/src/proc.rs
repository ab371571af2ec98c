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

/// SIGKILLs the postmaster and its backends, so client connections break at
/// once like on a real crash: the process group when pg_ctl made the
/// postmaster its leader, and every child by pid too (a backend that outlives
/// its postmaster can still commit for a moment, which a crash test must not
/// see). Waits (bounded) until all of them are gone.
pub(crate) fn kill_postmaster(pid: u32) {
    let children = children_of(pid);
    let mut targets: Vec<String> = match stat_of(pid) {
        Some((_, pgrp)) if pgrp == pid => vec![format!("-{pid}")],
        _ => vec![pid.to_string()],
    };
    targets.extend(children.iter().map(u32::to_string));
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--"])
        .args(&targets)
        .output();
    let deadline = Instant::now() + Duration::from_secs(5);
    let any_alive = || is_alive(pid) || children.iter().any(|&c| is_alive(c));
    while any_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&c| {
            std::fs::read_to_string(format!("/proc/{c}/stat"))
                .ok()
                .and_then(|s| parse_ppid(&s))
                == Some(pid)
        })
        .collect()
}

/// The parent pid from the text of `/proc/<pid>/stat`.
fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Removes a System V shared-memory segment left behind by a killed postmaster.
pub(crate) fn remove_shm(id: u32) {
    let _ = Command::new("ipcrm").args(["-m", &id.to_string()]).output();
}

#[cfg(test)]
mod tests;
