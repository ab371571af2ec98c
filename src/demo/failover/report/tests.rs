use super::*;
use crate::demo::failover::clients::Op;

fn rows(pairs: &[(i64, i64)]) -> HashMap<i64, i64> {
    pairs.iter().copied().collect()
}

#[test]
fn every_acknowledged_insert_present_once_is_clean() {
    let c = check_writes(&[1, 2, 3], &[], &rows(&[(1, 1), (2, 1), (3, 1)]));
    assert_eq!(
        c,
        WriteCheck {
            acked: 3,
            present_once: 3,
            ..WriteCheck::default()
        }
    );
}

#[test]
fn lost_duplicated_and_unknown_rows_are_counted() {
    let c = check_writes(
        &[1, 2, 3],
        &[4, 5],
        &rows(&[(1, 1), (3, 2), (5, 1), (9, 1)]),
    );
    assert_eq!(c.present_once, 1);
    assert_eq!(c.missing, 1, "id 2 is gone");
    assert_eq!(c.duplicated, 1, "id 3 twice");
    assert_eq!(c.failed, 2);
    assert_eq!(
        c.failed_committed, 1,
        "id 5 committed though its ack was lost"
    );
    assert_eq!(c.unknown, 1, "id 9 was never tried");
}

fn err(started_ms: u64, ended_ms: u64) -> OpError {
    OpError {
        op: Op::Insert,
        started: Duration::from_millis(started_ms),
        ended: Duration::from_millis(ended_ms),
        message: "08006 gone".into(),
    }
}

#[test]
fn errors_split_around_the_kill() {
    let kill = Some((Duration::from_millis(2000), Duration::from_millis(2010)));
    let errors = [
        err(100, 150),   // before
        err(1990, 2005), // in flight
        err(2005, 2500), // started during the kill: in flight
        err(2100, 2200), // after
    ];
    assert_eq!(
        split_errors(&errors, kill),
        ErrorSplit {
            before_kill: 1,
            in_flight: 2,
            after_kill: 1
        }
    );
    assert_eq!(split_errors(&errors, None).before_kill, 4);
}
