//! Tests for `${NAME}` substitution, the first step of config loading.

use std::env::VarError;

use super::{substitute, substitute_with, EnvError};

fn lookup(name: &str) -> Result<String, VarError> {
    match name {
        "USER_PW" => Ok("s3cret".into()),
        "PORT" => Ok("5433".into()),
        "EMPTY" => Ok(String::new()),
        "QUOTED" => Ok("a\"b\\c\nd".into()),
        "APOS" => Ok("it's".into()),
        _ => Err(VarError::NotPresent),
    }
}

fn sub(text: &str) -> Result<String, EnvError> {
    substitute_with(text, lookup).map(|s| s.text)
}

#[test]
fn set_variables_are_substituted() {
    assert_eq!(
        sub("password = \"${USER_PW}\"").unwrap(),
        "password = \"s3cret\""
    );
    assert_eq!(sub("port = ${PORT}\n").unwrap(), "port = 5433\n");
    assert_eq!(sub("a = '${PORT}'").unwrap(), "a = '5433'");
}

#[test]
fn unset_variable_without_default_names_variable_and_line() {
    let err = sub("a = 1\n\nb = \"${NOPE}\"\n").unwrap_err();
    assert_eq!(
        err,
        EnvError::Unset {
            name: "NOPE".into(),
            line: 3
        }
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("line 3: environment variable NOPE is not set"),
        "{msg}"
    );
}

#[test]
fn defaults_apply_when_unset_or_empty() {
    assert_eq!(sub("x = \"${NOPE:-dev}\"").unwrap(), "x = \"dev\"");
    assert_eq!(sub("x = \"${EMPTY:-dev}\"").unwrap(), "x = \"dev\"");
    assert_eq!(sub("x = \"${USER_PW:-dev}\"").unwrap(), "x = \"s3cret\"");
    assert_eq!(sub("x = \"${NOPE:-}\"").unwrap(), "x = \"\"");
    assert_eq!(sub("x = \"${EMPTY}\"").unwrap(), "x = \"\"");
}

#[test]
fn double_dollar_escapes_and_lone_dollars_stay() {
    assert_eq!(sub("x = \"pa$$word\"").unwrap(), "x = \"pa$word\"");
    assert_eq!(sub("x = \"$${USER_PW}\"").unwrap(), "x = \"${USER_PW}\"");
    let scram = "x = \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"";
    assert_eq!(sub(scram).unwrap(), scram);
}

#[test]
fn comments_are_left_alone() {
    let text = "# set ${NOPE} or pa$$word\nx = 1 # ${ALSO_NOPE}\ny = \"#${PORT}\"\n";
    assert_eq!(
        sub(text).unwrap(),
        "# set ${NOPE} or pa$$word\nx = 1 # ${ALSO_NOPE}\ny = \"#5433\"\n"
    );
}

#[test]
fn values_are_escaped_for_basic_strings() {
    let out = sub("x = \"${QUOTED}\"").unwrap();
    assert_eq!(out, "x = \"a\\\"b\\\\c\\nd\"");
    let parsed: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(parsed["x"].as_str(), Some("a\"b\\c\nd"));
}

#[test]
fn values_that_cannot_be_literal_strings_are_refused() {
    assert_eq!(
        sub("x = '${APOS}'").unwrap_err(),
        EnvError::Unquotable {
            name: "APOS".into(),
            line: 1
        }
    );
    assert_eq!(sub("x = '''${APOS}'''").unwrap(), "x = '''it's'''");
}

#[test]
fn string_state_tracks_escapes_and_multiline() {
    // The escaped quote must not end the string; the `#` inside is no comment.
    let out = sub("x = \"a\\\"#${PORT}\"\ny = \"\"\"\n#${PORT}\n\"\"\"\n").unwrap();
    assert_eq!(out, "x = \"a\\\"#5433\"\ny = \"\"\"\n#5433\n\"\"\"\n");
}

#[test]
fn malformed_references_are_errors() {
    assert_eq!(
        sub("a = 1\nx = \"${USER_PW\"\n").unwrap_err(),
        EnvError::Unterminated { line: 2 }
    );
    assert_eq!(
        sub("x = \"${1BAD}\"").unwrap_err(),
        EnvError::BadName {
            name: "1BAD".into(),
            line: 1
        }
    );
    assert!(matches!(sub("x = \"${}\""), Err(EnvError::BadName { .. })));
}

#[test]
fn not_unicode_is_reported() {
    let err = substitute_with("x = \"${V}\"", |_| {
        Err(VarError::NotUnicode(std::ffi::OsString::from("x")))
    })
    .unwrap_err();
    assert_eq!(
        err,
        EnvError::NotUnicode {
            name: "V".into(),
            line: 1
        }
    );
}

#[test]
fn offsets_map_back_to_the_original() {
    let s = substitute_with("a = \"${USER_PW}\" b", lookup).unwrap();
    assert_eq!(s.text, "a = \"s3cret\" b");
    assert_eq!(s.original_offset(2), 2);
    // Inside the substituted value: the `${` it came from.
    assert_eq!(s.original_offset(7), 5);
    // After it: shifted by the length difference.
    assert_eq!(s.original_offset(13), "a = \"${USER_PW}\" ".len());
}

#[test]
fn reads_the_process_environment() {
    std::env::set_var("ATTACHE_ENV_TEST_ONLY_VAR", "from-env");
    let out = substitute("x = \"${ATTACHE_ENV_TEST_ONLY_VAR}\"").unwrap();
    assert_eq!(out.text, "x = \"from-env\"");
}

#[test]
fn debug_hides_the_substituted_text() {
    let s = substitute_with("x = \"${USER_PW}\"", lookup).unwrap();
    assert!(!format!("{s:?}").contains("s3cret"));
}
