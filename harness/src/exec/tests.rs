use std::process::Command;

use super::*;

#[test]
fn effective_uid_is_the_second_uid_field() {
    let status = "Name:\tcargo\nUid:\t1000\t0\t1000\t1000\nGid:\t5\t5\t5\t5\n";
    assert_eq!(effective_uid(status), Some(0));
    assert_eq!(effective_uid("Name:\tx\n"), None);
}

#[test]
fn newest_bindir_prefers_the_highest_complete_version() {
    let root = tempfile::tempdir().unwrap();
    let make = |version: &str, files: &[&str]| {
        let bin = root.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for f in files {
            std::fs::write(bin.join(f), "").unwrap();
        }
    };
    make("9.6", &["initdb", "postgres"]);
    make("13", &["initdb", "postgres"]);
    make("17", &["psql"]); // client-only install: not usable
    make("common", &["initdb", "postgres"]); // not a version
    let found = newest_bindir(root.path()).unwrap();
    assert_eq!(found, root.path().join("13").join("bin"));
    assert_eq!(newest_bindir(&root.path().join("missing")), None);
}

#[test]
fn versions_compare_numerically() {
    assert!(parse_version("10").unwrap() > parse_version("9.6").unwrap());
    assert_eq!(parse_version("15beta"), None);
}

#[test]
fn failing_command_reports_its_stderr_and_argv() {
    let err = run(Command::new("sh").args(["-c", "echo broken >&2; exit 3"])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("broken"), "{text}");
    assert!(text.contains("sh -c"), "{text}");
}

#[test]
fn input_goes_through_stdin_not_argv() {
    let out = run_with_input(&mut Command::new("cat"), "SELECT 'secret';\n").unwrap();
    assert_eq!(out, "SELECT 'secret';\n");
}

#[test]
fn sanitize_strips_inherited_pg_variables() {
    std::env::set_var("PGHARNESS_UNIT_TEST", "leak");
    let mut cmd = Command::new("sh");
    sanitize(&mut cmd);
    let out = run(cmd.args(["-c", "echo \"${PGHARNESS_UNIT_TEST:-clean}\""])).unwrap();
    assert_eq!(out.trim(), "clean");
}
