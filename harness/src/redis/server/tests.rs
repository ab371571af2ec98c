use super::*;

#[test]
fn cluster_ports_leave_room_for_the_bus_port() {
    for _ in 0..20 {
        let port = free_cluster_port();
        assert!(port <= MAX_CLUSTER_PORT);
    }
}

#[test]
fn builder_debug_hides_passwords() {
    let builder = RedisBuilder::new()
        .password("pw-one-secret")
        .acl_user("alice", "pw-two-secret");
    let shown = format!("{builder:?}");
    assert!(shown.contains("alice"));
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn invalid_settings_fail_before_anything_starts() {
    let err = RedisBuilder::new()
        .setting("port", "1\nbind 0.0.0.0")
        .start()
        .unwrap_err();
    assert!(matches!(err, RedisError::InvalidSetting(_)), "{err}");
    let err = RedisBuilder::new()
        .acl_user("a b", "x")
        .start()
        .unwrap_err();
    assert!(matches!(err, RedisError::InvalidSetting(_)), "{err}");
}

#[test]
fn private_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_private(&path, "secret").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
}
