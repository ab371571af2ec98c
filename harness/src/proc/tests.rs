use super::*;

#[test]
fn pid_file_yields_pid_and_shm_id() {
    let text = "4242\n/tmp/x/data\n1700000000\n5433\n/tmp/x/data\n127.0.0.1\n  5433001     98310\nready   \n";
    let parsed = parse_pid_file(text).unwrap();
    assert_eq!(
        parsed,
        PidFile {
            pid: 4242,
            shm_id: Some(98310)
        }
    );
    assert_eq!(parse_pid_file("4242\n").unwrap().shm_id, None);
    assert_eq!(parse_pid_file("not a pid\n"), None);
}

#[test]
fn stat_parsing_survives_odd_command_names() {
    let stat = "77 (post gres) x) S 1 77 77 0 -1 4194560";
    assert_eq!(parse_stat(stat), Some(('S', 77)));
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn liveness_tracks_real_processes() {
    assert!(is_alive(std::process::id()));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!is_alive(pid));
}

#[test]
fn kill_postmaster_kills_a_process_group_leader_and_its_members() {
    // setsid makes the shell a group leader like pg_ctl makes the postmaster one.
    let mut child = std::process::Command::new("setsid")
        .args(["sh", "-c", "sleep 30 & sleep 30"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while stat_of(pid).map(|(_, g)| g) != Some(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_postmaster(pid);
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!is_alive(pid));
}

#[test]
fn kill_postmaster_kills_the_children_of_a_parent_that_leads_no_group() {
    // Not a group leader (no setsid): its children must die by pid, the
    // test's own process group untouched.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "sleep 30 & sleep 30 & wait"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut kids = children_of(pid);
    while kids.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        kids = children_of(pid);
    }
    assert_eq!(kids.len(), 2, "two sleeps started");
    kill_postmaster(pid);
    child.wait().unwrap();
    for k in kids {
        assert!(!is_alive(k), "child {k} survived");
    }
}

#[test]
fn ppid_is_read_past_a_command_name_with_spaces() {
    assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
    assert_eq!(parse_ppid("garbage"), None);
}
