use std::time::Duration;

use super::*;
use crate::config::types::Config;

fn db(extra: &str) -> crate::config::types::DatabaseConfig {
    let text =
        format!("[postgres.databases.app]\nnodes = [{{ addr = \"127.0.0.1:5432\" }}]\n{extra}");
    let cfg: Config = toml::from_str(&text).expect("parses");
    cfg.postgres.expect("postgres").databases["app"].clone()
}

#[test]
fn defaults_apply() {
    let t = Topology::resolve(&db(""));
    assert_eq!(t.split, SplitMode::Auto);
    assert_eq!(t.consistency, Consistency::ReadYourWrites);
    assert_eq!(t.balance, Balance::P2c);
    assert_eq!(t.primary_reads, PrimaryReads::Fallback);
    assert_eq!(t.failover_timeout, builtin::FAILOVER_TIMEOUT);
    assert_eq!(t.interval, builtin::INTERVAL);
    assert_eq!(t.max_lag, Some(builtin::MAX_LAG));
    assert_eq!(t.max_lag_bytes, Some(builtin::MAX_LAG_BYTES));
    assert!(t.query.is_none());
}

#[test]
fn settings_are_read_and_zero_disables_lag_limits() {
    let t = Topology::resolve(&db(
        "read_write_split = \"off\"\nconsistency = \"eventual\"\nbalance = \"least-outstanding\"\n\
         primary_reads = \"never\"\nfailover_timeout = \"5s\"\nread_only_functions = [\"app.f\"]\n\
         [postgres.databases.app.health]\ninterval = \"250ms\"\nmax_lag = 0\nmax_lag_bytes = 0\n\
         query = \"SELECT 1\"\nuser = \"monitor\"\npassword = \"pw\"\n",
    ));
    assert_eq!(t.split, SplitMode::Off);
    assert_eq!(t.consistency, Consistency::Eventual);
    assert_eq!(t.balance, Balance::LeastOutstanding);
    assert_eq!(t.primary_reads, PrimaryReads::Never);
    assert_eq!(t.failover_timeout, Duration::from_secs(5));
    assert_eq!(t.read_only_functions, vec!["app.f".to_string()]);
    assert_eq!(t.interval, Duration::from_millis(250));
    assert_eq!(t.max_lag, None);
    assert_eq!(t.max_lag_bytes, None);
    assert_eq!(t.query.as_deref(), Some("SELECT 1"));
    assert_eq!(t.probe_user.as_deref(), Some("monitor"));
    assert!(
        !format!("{t:?}").contains("pw\""),
        "password must be redacted"
    );
}

#[test]
fn unknown_health_key_is_rejected() {
    let text = "[postgres.databases.app]\nnodes = [{ addr = \"127.0.0.1:5432\" }]\n\
                [postgres.databases.app.health]\nintervall = \"1s\"\n";
    let err = toml::from_str::<Config>(text).expect_err("unknown key");
    assert!(err.to_string().contains("intervall"), "{err}");
}
