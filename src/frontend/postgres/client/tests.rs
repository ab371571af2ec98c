use super::*;

fn set_of(c: &SessionCommand, name: &str) -> bool {
    matches!(c, SessionCommand::Set { name: n, .. } if n == name)
}

#[test]
fn session_commands_are_found_only_where_they_are() {
    // Plain statements, transaction control included, carry none.
    for sql in [
        "select 1",
        "BEGIN",
        "commit",
        "END;",
        "  start transaction",
        "update t set a = 1",
    ] {
        assert!(session_commands(sql).is_empty(), "{sql}");
    }
    // A `;` inside a literal is not a second statement.
    assert!(session_commands("select ';'").is_empty());
    let found = session_commands("SET search_path TO app");
    assert!(
        matches!(found.as_slice(), [c] if set_of(c, "search_path")),
        "{found:?}"
    );
    // Behind other statements, in and out of a transaction block.
    let found = session_commands("begin; set work_mem = '64MB'; commit");
    assert!(
        matches!(found.as_slice(), [c] if set_of(c, "work_mem")),
        "{found:?}"
    );
    let found = session_commands("select 1; listen jobs");
    assert!(
        matches!(found.as_slice(), [SessionCommand::Listen]),
        "{found:?}"
    );
    // SET LOCAL is the transaction's, not the session's.
    assert!(session_commands("SET LOCAL work_mem = '1MB'").is_empty());
}
