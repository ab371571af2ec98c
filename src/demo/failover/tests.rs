use super::*;

#[test]
fn operations_count_in_the_row_they_finished_in() {
    let s = Shared::new();
    s.record(Duration::from_millis(100), true, Some(5433));
    s.record(Duration::from_millis(499), false, None);
    s.record(Duration::from_millis(500), true, Some(5434));
    let row = |i: usize| {
        let b = &s.buckets[i];
        (
            b.ok.load(Ordering::Relaxed),
            b.err.load(Ordering::Relaxed),
            b.write_port.load(Ordering::Relaxed),
        )
    };
    assert_eq!(row(0), (1, 1, 5433));
    assert_eq!(row(1), (1, 0, 5434));
}

#[test]
fn work_ending_after_the_run_lands_in_the_extra_row() {
    let s = Shared::new();
    s.record(RUN_FOR + Duration::from_secs(30), false, None);
    let last = s.buckets.last().unwrap();
    assert_eq!(last.err.load(Ordering::Relaxed), 1);
    assert_eq!(
        s.buckets.len() as u128,
        RUN_FOR.as_millis() / TICK.as_millis() + 1
    );
}

#[test]
fn events_are_unset_until_marked() {
    let s = Shared::new();
    assert_eq!(s.event(Event::KillIssued), None);
    let at = s.mark(Event::KillIssued);
    assert_eq!(
        s.event(Event::KillIssued),
        Some(Duration::from_millis(at.as_millis() as u64))
    );
    assert_eq!(s.event(Event::PromoteDone), None);
}

#[test]
fn the_config_names_both_nodes_and_the_failover_knobs() {
    let toml = format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\n\n[postgres.databases.app]\nnodes = [{{ addr = \"127.0.0.1:1\", role = \"primary\" }}, {{ addr = \"127.0.0.1:2\", role = \"replica\" }}]\nfailover_timeout = \"{FAILOVER_TIMEOUT}\"\n\n[postgres.databases.app.health]\ninterval = \"{HEALTH_INTERVAL}\"\n"
    );
    let cfg = crate::config::parse(&toml).expect("demo knobs are valid config");
    let db = &cfg.postgres.unwrap().databases["app"];
    let t = crate::config::topology::Topology::resolve(db);
    assert_eq!(t.failover_timeout, Duration::from_secs(30));
    assert_eq!(t.interval, Duration::from_millis(250));
}
