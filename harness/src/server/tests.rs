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
