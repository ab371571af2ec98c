use super::*;

fn cfg(text: &str) -> Config {
    crate::config::parse(text).expect("valid")
}

const BASE: &str = "[postgres]\nlisten = \"127.0.0.1:6432\"\npool_size = 5\n\
                    [postgres.databases.app]\nnodes = [{ addr = \"127.0.0.1:5432\" }]\n";

#[test]
fn restart_only_changes_are_named() {
    let old = cfg(BASE);
    assert!(restart_only_changes(&old, &cfg(BASE)).is_empty());
    // Pool knobs, the listen address and [redis] apply live.
    let pool_only = BASE.replace("pool_size = 5", "pool_size = 9");
    assert!(restart_only_changes(&old, &cfg(&pool_only)).is_empty());
    let with_redis = format!("{BASE}[redis]\nnodes = [\"127.0.0.1:6379\"]\n");
    assert!(restart_only_changes(&old, &cfg(&with_redis)).is_empty());
    let moved = BASE.replace("6432", "6433") + "[general]\nshutdown_timeout = \"5s\"\n";
    assert!(restart_only_changes(&old, &cfg(&moved)).is_empty());
    let threads = format!("{BASE}[general]\nworker_threads = 3\n");
    assert_eq!(
        restart_only_changes(&old, &cfg(&threads)),
        vec!["general.worker_threads".to_owned()]
    );
    // Sections come and go live too.
    let redis_only = "[redis]\nnodes = [\"127.0.0.1:6379\"]\n";
    assert!(restart_only_changes(&old, &cfg(redis_only)).is_empty());
}

#[test]
fn an_invalid_config_is_rejected_and_the_old_one_stays() {
    let r = Reloader::new(None, cfg(BASE), None);
    let mut bad = cfg(BASE);
    if let Some(pg) = bad.postgres.as_mut() {
        pg.listen = "not an address".into();
    }
    let err = r.reload(bad).expect_err("invalid");
    assert_eq!(r.rejected.load(std::sync::atomic::Ordering::Relaxed), 1);
    let text = err.to_string();
    assert!(text.contains("postgres.listen"), "{text}");
    assert!(text.contains("running config stays"), "{text}");
    let kept = r.current.lock().unwrap().postgres.clone().unwrap();
    assert_eq!(kept.listen, "127.0.0.1:6432");
    assert!(matches!(r.reload_from_source(), Err(ReloadError::NoSource)));
}

#[test]
fn outcome_reads_well() {
    let o = ReloadOutcome {
        applied: vec!["postgres: 1 pool(s) replaced".into()],
        needs_restart: vec!["[redis]".into()],
    };
    assert_eq!(
        o.to_string(),
        "reloaded: postgres: 1 pool(s) replaced; needs a restart to take effect: [redis]"
    );
}
