use super::*;

#[test]
fn equal_statements_share_a_server_name() {
    let a = server_name(b"select $1", &[0, 1, 0, 0, 0, 23]);
    let b = server_name(b"select $1", &[0, 1, 0, 0, 0, 23]);
    let c = server_name(b"select $1", &[0, 1, 0, 0, 0, 25]);
    let d = server_name(b"select $2", &[0, 1, 0, 0, 0, 23]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    assert!(a.starts_with("attache_") && a.len() == 8 + 32);
}

#[test]
fn client_map_insert_remove() {
    let mut s = Statements::default();
    let st = s.insert("s1", b"select 1", &[0, 0], true);
    assert_eq!(
        s.get("s1").map(|x| x.server_name.clone()),
        Some(st.server_name)
    );
    assert!(s.contains("s1"));
    assert_eq!(s.len(), 1);
    assert!(s.remove("s1").is_some());
    assert!(s.get("s1").is_none());
}

#[test]
fn the_bytes_kept_follow_inserts_removals_and_clears() {
    let mut s = Statements::default();
    s.insert("a", b"select 1", &[0, 0], true);
    s.insert("bb", b"select 22", &[0, 0], true);
    assert_eq!(s.bytes(), (1 + 8 + 2) + (2 + 9 + 2));
    s.insert("a", b"select 333", &[0, 0], true);
    assert_eq!(s.bytes(), (1 + 10 + 2) + (2 + 9 + 2), "a replaced");
    s.remove("bb");
    assert_eq!(s.bytes(), 1 + 10 + 2);
    assert!(s.remove("nope").is_none());
    s.clear();
    assert_eq!(s.bytes(), 0);
}
