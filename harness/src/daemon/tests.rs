use super::*;
use crate::http::HttpError;
use crate::redis::RedisError;

fn sh(script: &str) -> Vec<OsString> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Waits until the log contains `text`, through the daemon's own readiness loop.
fn wait_log(daemon: &mut Daemon, text: &str) {
    let log = daemon.log_path();
    daemon
        .wait_ready("sh", 0, 5, || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text))
        })
        .unwrap();
}

/// A shell that starts a background `sleep` (a second group member), prints its pid and
/// waits; returns the daemon, the leader's and the background process's pid.
fn with_background_member() -> (Daemon, u32, u32) {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("sleep 30 & echo \"bg=$!\"; wait")).unwrap();
    wait_log(&mut daemon, "bg=");
    let log = std::fs::read_to_string(daemon.log_path()).unwrap();
    let bg: u32 = log.trim().trim_start_matches("bg=").parse().unwrap();
    let leader = daemon.pid().unwrap();
    (daemon, leader, bg)
}

#[test]
fn drop_kills_the_child_and_removes_the_dir() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("echo started; exec sleep 30")).unwrap();
    let pid = daemon.pid().unwrap();
    let dir = daemon.dir().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(dir.join(PID_FILE)).unwrap(),
        pid.to_string()
    );
    wait_log(&mut daemon, "started");
    drop(daemon);
    assert!(!is_alive(pid));
    assert!(!dir.exists());
}

#[test]
fn the_child_leads_its_own_process_group_and_pids_lists_it() {
    let (daemon, leader, bg) = with_background_member();
    let stat = std::fs::read_to_string(format!("/proc/{leader}/stat")).unwrap();
    assert_eq!(parse_stat(&stat).map(|(_, pgrp)| pgrp), Some(leader));
    assert_eq!(daemon.pids(), [leader, bg]);
    drop(daemon);
    assert!(!is_alive(leader));
    assert!(!is_alive(bg), "drop kills the whole group");
}

#[test]
fn kill_takes_the_group_and_exited_sweeps_what_the_leader_left() {
    let (mut daemon, leader, bg) = with_background_member();
    daemon.kill();
    assert!(!is_alive(leader) && !is_alive(bg));
    assert_eq!(daemon.pids(), Vec::<u32>::new());
    assert!(!daemon.dir().join(PID_FILE).exists());

    // A leader that exits on its own leaves its background member behind; noticing the exit
    // kills it.
    daemon.spawn(sh("sleep 30 & echo \"bg=$!\"")).unwrap();
    assert!(daemon.wait_exit(Duration::from_secs(5)));
    let log = daemon.log_tail();
    let bg: u32 = log.trim().trim_start_matches("bg=").parse().unwrap();
    assert!(!is_alive(bg), "stray group member survived: {log}");
}

#[test]
fn wait_ready_reports_an_early_exit_with_the_log() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon
        .spawn(sh("echo bind: Address already in use >&2; exit 3"))
        .unwrap();
    let err = daemon.wait_ready("fake", 1234, 5, || false).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("fake on port 1234"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(err.port_taken());
    assert_eq!(daemon.pid(), None);
    assert!(!daemon.dir().join(PID_FILE).exists());
}

#[test]
fn an_exit_wins_over_a_ready_probe() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("exit 4")).unwrap();
    // Give the shell time to exit, then claim readiness: the exit must still be reported.
    std::thread::sleep(Duration::from_millis(200));
    let err = daemon.wait_ready("fake", 1, 5, || true).unwrap_err();
    assert!(err.to_string().contains("exit status: 4"), "{err}");
}

#[test]
fn wait_ready_times_out_and_kills() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("exec sleep 30")).unwrap();
    let pid = daemon.pid().unwrap();
    let err = daemon.wait_ready("slow", 1, 0, || false).unwrap_err();
    assert!(err.to_string().contains("not ready within 0s"), "{err}");
    assert!(!err.port_taken());
    assert!(!is_alive(pid));
}

#[test]
fn wait_port_waits_for_a_listener() {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let open = listener.local_addr().unwrap().port();
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("exec sleep 30")).unwrap();
    daemon.wait_port("sleep", open, 5).unwrap();
    drop(listener);
    let err = daemon.wait_port("sleep", open, 0).unwrap_err();
    assert!(err.to_string().contains("not ready within 0s"), "{err}");
}

#[test]
fn respawn_runs_the_same_command_again_and_logs_only_new_output() {
    let mut daemon = Daemon::create("unit").unwrap();
    assert!(matches!(daemon.respawn(), Err(DaemonError::NothingToSpawn)));
    daemon.spawn(sh("echo run; exec sleep 30")).unwrap();
    let first = daemon.pid().unwrap();
    let log = daemon.log_path();
    let runs = |n: usize| {
        let log = log.clone();
        move || std::fs::read_to_string(&log).is_ok_and(|l| l.matches("run").count() == n)
    };
    daemon.wait_ready("sleep", 0, 5, runs(1)).unwrap();
    daemon.kill();
    assert!(!is_alive(first));
    daemon.respawn().unwrap();
    let second = daemon.pid().unwrap();
    assert_ne!(first, second);
    daemon.wait_ready("sleep", 0, 5, runs(2)).unwrap();
    assert_eq!(daemon.log_tail(), "run\n");
}

#[test]
fn watchdog_kills_the_group_when_its_pipe_closes() {
    let (mut daemon, leader, bg) = with_background_member();
    let dir = daemon.dir().to_path_buf();
    // Closing our write end is what the kernel does when the test process dies.
    let mut watchdog = daemon.watchdog.take().unwrap();
    drop(watchdog.stdin.take());
    watchdog.wait().unwrap();
    // The leader is still our child, so reap it before checking.
    assert!(daemon.wait_exit(Duration::from_secs(5)));
    assert!(!is_alive(leader));
    assert!(!is_alive(bg));
    assert!(!dir.exists());
}

#[test]
fn errors_convert_into_the_redis_and_http_variants() {
    let start = || DaemonError::Start {
        what: "x".to_string(),
        port: 7,
        log: "bind: Address already in use".to_string(),
    };
    let redis = RedisError::from(start());
    assert!(matches!(&redis, RedisError::Start { port: 7, .. }) && redis.port_taken());
    let http = HttpError::from(start());
    assert!(matches!(&http, HttpError::Start { port: 7, .. }) && http.port_taken());
    assert_eq!(http.to_string(), start().to_string());

    let io = || DaemonError::io("ctx", std::io::Error::other("boom"));
    assert!(matches!(RedisError::from(io()), RedisError::Io { context, .. } if context == "ctx"));
    assert!(matches!(HttpError::from(io()), HttpError::Io { context, .. } if context == "ctx"));
    assert!(!RedisError::from(io()).port_taken() && !HttpError::from(io()).port_taken());

    let nothing = RedisError::from(DaemonError::NothingToSpawn);
    assert!(matches!(nothing, RedisError::Topology(t) if t == "nothing to spawn"));
    let nothing = HttpError::from(DaemonError::NothingToSpawn);
    assert!(matches!(nothing, HttpError::Invalid(t) if t == "nothing to spawn"));
}
