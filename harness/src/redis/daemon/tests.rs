use super::*;

fn sh(script: &str) -> Vec<OsString> {
    vec!["sh".into(), "-c".into(), script.into()]
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
    daemon
        .wait_ready("sleep", 0, 5, || {
            std::fs::read_to_string(dir.join(LOG_FILE)).is_ok_and(|l| l.contains("started"))
        })
        .unwrap();
    drop(daemon);
    assert!(!is_alive(pid));
    assert!(!dir.exists());
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
    assert!(port_taken(&err));
    assert_eq!(daemon.pid(), None);
    assert!(!daemon.dir().join(PID_FILE).exists());
}

#[test]
fn wait_ready_times_out_and_kills() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("exec sleep 30")).unwrap();
    let pid = daemon.pid().unwrap();
    let err = daemon.wait_ready("slow", 1, 0, || false).unwrap_err();
    assert!(err.to_string().contains("not ready within 0s"), "{err}");
    assert!(!port_taken(&err));
    assert!(!is_alive(pid));
}

#[test]
fn respawn_runs_the_same_command_again_and_logs_only_new_output() {
    let mut daemon = Daemon::create("unit").unwrap();
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
    assert_eq!(daemon.log_since_spawn(), "run\n");
}

#[test]
fn watchdog_kills_the_child_when_its_pipe_closes() {
    let mut daemon = Daemon::create("unit").unwrap();
    daemon.spawn(sh("exec sleep 30")).unwrap();
    let pid = daemon.pid().unwrap();
    let dir = daemon.dir().to_path_buf();
    // Closing our write end is what the kernel does when the test process dies.
    let mut watchdog = daemon.watchdog.take().unwrap();
    drop(watchdog.stdin.take());
    watchdog.wait().unwrap();
    // The child is still ours, so reap it before checking.
    assert!(daemon.wait_exit(Duration::from_secs(5)));
    assert!(!is_alive(pid));
    assert!(!dir.exists());
}
