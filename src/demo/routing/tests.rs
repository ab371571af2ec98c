use super::*;

#[test]
fn one_server_gets_role_port_and_share() {
    let t = Tally::from([(5434, 10)]);
    let line = route_line("reads", "SELECT 1", &t, 5433, 5434);
    assert!(line.starts_with("reads "), "{line}");
    assert!(line.contains("→ replica :5434 (10 of 10)"), "{line}");
    assert!(line.ends_with("SELECT 1"), "{line}");
}

#[test]
fn a_split_lists_every_server_with_its_role() {
    let t = Tally::from([(5433, 3), (5434, 7), (9999, 1)]);
    let line = route_line("reads", "SELECT 1", &t, 5433, 5434);
    assert!(
        line.contains(
            "primary :5433 (3 of 11), replica :5434 (7 of 11), unknown server :9999 (1 of 11)"
        ),
        "{line}"
    );
}
