use super::*;

mod fuzz;
mod table;

fn table_classifier() -> Classifier {
    Classifier::new(table::EXTRA_READ_ONLY.iter().map(|s| s.to_string()), 1024)
}

#[test]
fn table_routes() {
    assert!(
        table::TABLE.len() >= 150,
        "table has {} rows",
        table::TABLE.len()
    );
    let classifier = table_classifier();
    let wrong: Vec<String> = table::TABLE
        .iter()
        .filter_map(|&(sql, expected)| {
            let got = classifier.classify(sql).route;
            (got != expected).then(|| format!("{sql:?}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn table_routes_are_stable_when_cached() {
    let classifier = table_classifier();
    for &(sql, expected) in table::TABLE {
        assert_eq!(classifier.classify(sql).route, expected, "{sql:?} (first)");
        assert_eq!(classifier.classify(sql).route, expected, "{sql:?} (cached)");
    }
}

#[test]
fn unknown_function_is_read_only_once_configured() {
    let plain = Classifier::new(Vec::new(), 16);
    let configured = Classifier::new(vec!["f".to_string()], 16);
    assert_eq!(plain.classify("SELECT f(x)").route, Route::Write);
    assert_eq!(configured.classify("SELECT f(x)").route, Route::Read);
    // Configuring a user function never unlocks other functions.
    assert_eq!(configured.classify("SELECT g(x)").route, Route::Write);
    assert_eq!(
        configured.classify("SELECT f(nextval('s'))").route,
        Route::Write
    );
}

#[test]
fn builtin_list_is_sorted_and_excludes_side_effects() {
    let list = functions::builtin_list();
    assert!(
        list.windows(2).all(|w| w[0] < w[1]),
        "BUILTIN_READ_ONLY must be sorted and unique"
    );
    assert!(list.iter().all(|n| *n == n.to_ascii_lowercase()));
    for name in [
        "nextval",
        "setval",
        "currval",
        "lastval",
        "pg_advisory_lock",
        "pg_try_advisory_lock",
        "set_config",
        "pg_notify",
        "txid_current",
        "pg_current_xact_id",
        "pg_current_wal_lsn",
        "lo_import",
        "lo_create",
        "dblink",
        "dblink_exec",
        "pg_terminate_backend",
        "setseed",
    ] {
        assert!(
            !functions::is_builtin_read_only(name),
            "{name} must not be allowed"
        );
    }
    for name in [
        "count",
        "now",
        "lower",
        "row_number",
        "inet_server_port",
        "pg_is_in_recovery",
    ] {
        assert!(
            functions::is_builtin_read_only(name),
            "{name} must be allowed"
        );
    }
}

fn hint_of(sql: &str) -> Option<RoleHint> {
    Classifier::new(Vec::new(), 16).classify(sql).hint
}

#[test]
fn hints_do_not_change_the_route() {
    let classifier = Classifier::new(Vec::new(), 16);
    let insert = classifier.classify("/* attache: role=replica */ INSERT INTO t VALUES (1)");
    assert_eq!(
        insert,
        Classified {
            route: Route::Write,
            hint: Some(RoleHint::Replica)
        }
    );
    let select = classifier.classify("/* attache: role=primary */ SELECT 1");
    assert_eq!(
        select,
        Classified {
            route: Route::Read,
            hint: Some(RoleHint::Primary)
        }
    );
    let plain = classifier.classify("SELECT 1");
    assert_eq!(plain.hint, None);
}

#[test]
fn hint_comment_forms() {
    let replica = Some(RoleHint::Replica);
    let primary = Some(RoleHint::Primary);
    assert_eq!(hint_of("/* attache: role=primary */ SELECT 1"), primary);
    assert_eq!(hint_of("/*attache:role=replica*/SELECT 1"), replica);
    assert_eq!(
        hint_of("/*  ATTACHE :  ROLE = Replica  */ SELECT 1"),
        replica
    );
    assert_eq!(
        hint_of("/* attache: app=billing, role=replica */ SELECT 1"),
        replica
    );
    assert_eq!(
        hint_of("/* attache: app=billing role=primary x */ SELECT 1"),
        primary
    );
    assert_eq!(hint_of("/* attache: role='replica' */ SELECT 1"), replica);
    assert_eq!(hint_of("SELECT 1 /* attache: role=replica */"), replica);
    assert_eq!(
        hint_of("SELECT /* attache: role=replica */ 1; SELECT 2"),
        replica
    );
    assert_eq!(
        hint_of("/* attache: role=replica */ INSERT INTO t VALUES (1); SELECT 1"),
        replica
    );
    // Not hints.
    assert_eq!(hint_of("/* attache: role=leader */ SELECT 1"), None);
    assert_eq!(hint_of("/* attache: rolex=replica */ SELECT 1"), None);
    assert_eq!(hint_of("/* attache role=replica */ SELECT 1"), None);
    assert_eq!(hint_of("/* attached: role=replica */ SELECT 1"), None);
    assert_eq!(hint_of("/* note: attache: role=replica */ SELECT 1"), None);
    assert_eq!(hint_of("select 1 -- /* attache: role=replica */"), None);
    assert_eq!(hint_of("SELECT '/* attache: role=replica */'"), None);
    assert_eq!(hint_of("SELECT $$ /* attache: role=replica */ $$"), None);
    assert_eq!(
        hint_of("SELECT \"/* attache: role=replica */\" FROM t"),
        None
    );
    assert_eq!(
        hint_of("SELECT 'unterminated /* attache: role=replica */"),
        None
    );
    assert_eq!(hint_of("/* attache: role=replica */ SELECT 1\0"), None);
}

#[test]
fn session_role_command_valid_forms() {
    let replica = Some(Ok(Some(RoleHint::Replica)));
    let primary = Some(Ok(Some(RoleHint::Primary)));
    let auto = Some(Ok(None));
    assert_eq!(
        session_role_command("SET attache.role = 'replica'"),
        replica
    );
    assert_eq!(
        session_role_command("set attache.role to primary;"),
        primary
    );
    assert_eq!(
        session_role_command("  SET SESSION ATTACHE.ROLE TO 'Replica' ;  "),
        replica
    );
    assert_eq!(session_role_command("SET attache.role='PRIMARY'"), primary);
    assert_eq!(session_role_command("SET attache.role = auto"), auto);
    assert_eq!(session_role_command("SET attache.role TO DEFAULT"), auto);
    assert_eq!(session_role_command("RESET attache.role"), auto);
    assert_eq!(session_role_command("reset Attache.Role;"), auto);
}

#[test]
fn session_role_command_errors() {
    for sql in [
        "SET attache.role = 'x'",
        "SET attache.role = leader",
        "SET attache.role = ''",
        "SET attache.role = 'primary', 'replica'",
        "SET attache.role =",
        "SET attache.role replica",
        "SET LOCAL attache.role = 'replica'",
    ] {
        let result = session_role_command(sql);
        assert!(matches!(result, Some(Err(_))), "{sql:?} gave {result:?}");
    }
    let Some(Err(message)) = session_role_command("SET attache.role = 'bogus'") else {
        panic!("expected an error");
    };
    assert!(
        message.contains("bogus") && message.contains("attache.role"),
        "{message}"
    );
}

#[test]
fn session_role_command_ignores_other_text() {
    for sql in [
        "",
        "SELECT 1",
        "SET search_path = app",
        "SET attache.rolex = 'replica'",
        "SET attache = 'replica'",
        "RESET ALL",
        "RESET attache.role x",
        "SET attache.role = 'replica'; SELECT 1",
        "SET attache.role = 'replica';;",
        "/* c */ SET attache.role = 'replica'",
        "SET attache.role = 'it''s'",
        "SET attache.role = \"replica\"",
        "SHOW attache.role",
        "SET",
    ] {
        assert_eq!(session_role_command(sql), None, "{sql:?}");
    }
}

#[test]
fn cache_hits_do_not_grow_it() {
    let classifier = Classifier::new(Vec::new(), 8);
    assert_eq!(classifier.cache_len(), 0);
    classifier.classify("SELECT 1");
    classifier.classify("SELECT 1");
    classifier.classify("SELECT 1");
    assert_eq!(classifier.cache_len(), 1);
    classifier.classify("SELECT 2");
    assert_eq!(classifier.cache_len(), 2);
}

#[test]
fn cache_skips_obvious_writes() {
    let classifier = Classifier::new(Vec::new(), 8);
    classifier.classify("INSERT INTO t VALUES (1)");
    assert_eq!(classifier.cache_len(), 0);
    // Parsed writes are cached like reads.
    classifier.classify("SELECT nextval('s')");
    assert_eq!(classifier.cache_len(), 1);
}

#[test]
fn cache_is_bounded() {
    let classifier = Classifier::new(Vec::new(), 10);
    for i in 0..100 {
        let sql = format!("SELECT {i}");
        assert_eq!(classifier.classify(&sql).route, Route::Read);
        assert!(
            classifier.cache_len() <= 10,
            "grew to {}",
            classifier.cache_len()
        );
    }
    assert!(classifier.cache_len() >= 5);
    // Hot entries survive a sweep that cold ones do not.
    let hot = "SELECT 'hot'";
    classifier.classify(hot);
    for i in 0..30 {
        classifier.classify(hot);
        classifier.classify(&format!("SELECT {i} + 1"));
    }
    assert!(classifier.cache.get(hot).is_some());
}

#[test]
fn cache_skips_long_strings() {
    let classifier = Classifier::new(Vec::new(), 8);
    let long = format!("SELECT 1 -- {}", "x".repeat(cache::MAX_CACHED_LEN));
    assert_eq!(classifier.classify(&long).route, Route::Read);
    assert_eq!(classifier.cache_len(), 0);
    let fits = format!("SELECT 1 -- {}", "x".repeat(cache::MAX_CACHED_LEN - 20));
    classifier.classify(&fits);
    assert_eq!(classifier.cache_len(), 1);
}

#[test]
fn cache_capacity_zero_disables_it() {
    let classifier = Classifier::new(Vec::new(), 0);
    assert_eq!(classifier.classify("SELECT 1").route, Route::Read);
    assert_eq!(classifier.classify("SELECT 1").route, Route::Read);
    assert_eq!(classifier.cache_len(), 0);
}

#[test]
fn classifier_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
    let classifier = std::sync::Arc::new(table_classifier());
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let classifier = classifier.clone();
            std::thread::spawn(move || {
                for &(sql, expected) in table::TABLE.iter().skip(n) {
                    assert_eq!(classifier.classify(sql).route, expected, "{sql:?}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn obvious_write_prefilter() {
    assert!(is_obvious_write("INSERT INTO t VALUES (1)"));
    assert!(is_obvious_write(
        "  /* a /* b */ */ -- c\n update t set a = 1;; "
    ));
    assert!(is_obvious_write("copy t to stdout"));
    assert!(!is_obvious_write("INSERT INTO t VALUES (1); SELECT 1"));
    assert!(!is_obvious_write("INSERT INTO t VALUES ('a;b')"));
    assert!(!is_obvious_write("SELECT 1"));
    assert!(!is_obvious_write("WITH x AS (DELETE FROM t) SELECT 1"));
    assert!(!is_obvious_write("DOUBLE"));
    assert!(!is_obvious_write("/* INSERT */ SELECT 1"));
    assert!(!is_obvious_write("/* unterminated INSERT"));
    assert!(!is_obvious_write(""));
}

#[test]
fn wide_union_of_reads_is_a_read() {
    let classifier = Classifier::new(Vec::new(), 0);
    let sql = format!("SELECT 1{}", " UNION ALL SELECT now()".repeat(60));
    assert_eq!(classifier.classify(&sql).route, Route::Read);
    let with_write = format!("{sql} UNION ALL SELECT nextval('s')");
    assert_eq!(classifier.classify(&with_write).route, Route::Write);
}
