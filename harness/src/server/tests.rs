use super::*;

#[test]
fn tail_keeps_the_end_on_a_char_boundary() {
    let log = format!("é{}", "x".repeat(LOG_TAIL - 1));
    let cut = tail(&log);
    assert!(cut.len() <= LOG_TAIL);
    assert!(cut.ends_with('x'));
    assert_eq!(tail("short"), "short");
}

#[test]
fn read_from_returns_only_new_log_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, "old line\nnew line\n").unwrap();
    assert_eq!(read_from(&path, 9), "new line\n");
    assert_eq!(read_from(&dir.path().join("missing"), 0), "");
}

#[test]
fn parent_of_reads_the_field_after_the_state() {
    assert_eq!(parent_of("42 (post gres) S 7 42 42 0 -1"), Some(7));
    assert_eq!(parent_of("42 (a) b) R 1 42"), Some(1));
    assert_eq!(parent_of("garbage"), None);
}

#[test]
fn children_of_finds_a_spawned_child() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let found = children_of(std::process::id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found.contains(&child.id()),
        "{found:?} lacks {}",
        child.id()
    );
}
