use super::*;

#[test]
fn debug_never_shows_passwords() {
    let builder = PgBuilder::new()
        .user("app", "hunter2-secret")
        .database("appdb");
    let text = format!("{builder:?}");
    assert!(text.contains("app"));
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn nothing_to_provision_means_no_psql_round_trip() {
    assert_eq!(PgBuilder::new().provisioning_sql(), None);
}

#[test]
fn provisioning_creates_roles_before_databases_owned_by_first_user() {
    let sql = PgBuilder::new()
        .auth(HbaAuth::Md5)
        .user("app", "pw'1")
        .user("other", "pw2")
        .database("appdb")
        .provisioning_sql()
        .unwrap();
    assert!(sql.starts_with("SET password_encryption = 'md5';"), "{sql}");
    assert!(
        sql.contains("CREATE ROLE \"app\" LOGIN PASSWORD 'pw''1';"),
        "{sql}"
    );
    let template_grant = sql.find("\\connect template1").unwrap();
    let create_db = sql
        .find("CREATE DATABASE \"appdb\" OWNER \"app\";")
        .unwrap();
    assert!(template_grant < create_db, "{sql}");
    assert!(sql.contains("GRANT CREATE ON DATABASE \"appdb\" TO \"app\", \"other\";"));
}

#[test]
fn databases_without_users_have_default_owner() {
    let sql = PgBuilder::new().database("x").provisioning_sql().unwrap();
    assert!(sql.contains("CREATE DATABASE \"x\";"), "{sql}");
    assert!(!sql.contains("GRANT"), "{sql}");
}
