use super::*;

#[test]
fn coalesce_yields_while_turns_bring_company() {
    let mut c = Coalesce::default();
    for _ in 0..100 {
        assert!(c.try_now());
        c.record(true);
    }
}

#[test]
fn coalesce_stops_yielding_for_a_lone_client_but_probes() {
    let mut c = Coalesce::default();
    for _ in 0..MISSES_BEFORE_SKIP {
        assert!(c.try_now());
        c.record(false);
    }
    // Now skipping: only one batch in PROBE_EVERY yields.
    let yields = (0..PROBE_EVERY * 4)
        .filter(|_| {
            let y = c.try_now();
            if y {
                c.record(false);
            }
            y
        })
        .count();
    assert_eq!(yields, 4);
}

#[test]
fn coalesce_resumes_yielding_once_a_probe_finds_company() {
    let mut c = Coalesce::default();
    for _ in 0..MISSES_BEFORE_SKIP {
        c.try_now();
        c.record(false);
    }
    while !c.try_now() {}
    c.record(true);
    assert!((0..10).all(|_| c.try_now()));
}
