//! Respond, to the person watching: the failover demo's live timeline (one
//! row per [`TICK`]: operations that succeeded and failed, and which server
//! answered the inserts) and its summary, which checks the clients'
//! acknowledged inserts against the rows on the new primary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::clients::{ClientLog, OpError};
use super::{Event, Shared, RUN_FOR, TICK};

/// Error kinds the summary lists, most frequent first.
const ERROR_KINDS_SHOWN: usize = 6;

/// Prints one timeline row per [`TICK`] as it ends, until [`RUN_FOR`].
pub(super) async fn timeline(shared: Arc<Shared>, primary: u16, standby: u16) {
    println!("  time (s)     ok  errors  inserts answered by");
    let rows = (RUN_FOR.as_millis() / TICK.as_millis()) as u32;
    for i in 0..rows {
        let (from, to) = (TICK * i, TICK * (i + 1));
        // A little after the row ends, so what finished in it is counted.
        let due = shared.start + to + Duration::from_millis(20);
        tokio::time::sleep_until(due.into()).await;
        let Some(b) = shared.buckets.get(i as usize) else {
            return;
        };
        let port = b.write_port.load(Ordering::Relaxed);
        let writer = match u16::try_from(port) {
            Ok(0) | Err(_) => "-".to_string(),
            Ok(p) if p == primary => format!("primary :{p}"),
            Ok(p) if p == standby => format!("new primary :{p}"),
            Ok(p) => format!(":{p}"),
        };
        let notes: Vec<String> = Event::ALL
            .iter()
            .filter_map(|e| {
                shared
                    .event(*e)
                    .filter(|t| *t >= from && *t < to)
                    .map(|_| *e)
            })
            .filter_map(|e| event_note(e, primary, standby))
            .collect();
        let span = format!("{:.1}-{:.1}", from.as_secs_f64(), to.as_secs_f64());
        let line = format!(
            "  {span:<9} {:>6}  {:>6}  {writer:<18}{}",
            b.ok.load(Ordering::Relaxed),
            b.err.load(Ordering::Relaxed),
            notes.iter().map(|n| format!(" ← {n}")).collect::<String>()
        );
        println!("{}", line.trim_end());
    }
}

fn event_note(e: Event, primary: u16, standby: u16) -> Option<String> {
    match e {
        Event::KillIssued => Some(format!("kill -9 primary :{primary}")),
        Event::KillDone => None,
        Event::PromoteIssued => Some(format!("pg_ctl promote standby :{standby}")),
        Event::PromoteDone => Some("standby out of recovery".to_string()),
    }
}

/// Acknowledged and failed inserts against the rows on the new primary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct WriteCheck {
    pub acked: usize,
    /// Acknowledged and present exactly once.
    pub present_once: usize,
    /// Acknowledged but absent: a lost write.
    pub missing: usize,
    /// Ids (acknowledged or not) present more than once: a write run twice.
    pub duplicated: usize,
    /// Inserts that returned an error.
    pub failed: usize,
    /// Of those, present anyway (allowed: the commit happened, its
    /// acknowledgement was lost with the primary).
    pub failed_committed: usize,
    /// Ids no client tried to insert.
    pub unknown: usize,
}

pub(super) fn check_writes(acked: &[i64], failed: &[i64], rows: &HashMap<i64, i64>) -> WriteCheck {
    let count = |id: &i64| rows.get(id).copied().unwrap_or(0);
    let tried: HashSet<i64> = acked.iter().chain(failed).copied().collect();
    WriteCheck {
        acked: acked.len(),
        present_once: acked.iter().filter(|id| count(id) == 1).count(),
        missing: acked.iter().filter(|id| count(id) == 0).count(),
        duplicated: rows.values().filter(|n| **n > 1).count(),
        failed: failed.len(),
        failed_committed: failed.iter().filter(|id| count(id) > 0).count(),
        unknown: rows.keys().filter(|id| !tried.contains(id)).count(),
    }
}

/// Errors by when they happened relative to the kill.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ErrorSplit {
    pub before_kill: usize,
    /// Started before the kill finished and ended after it began.
    pub in_flight: usize,
    /// Started after the kill: these are what Attaché should have held.
    pub after_kill: usize,
}

/// `kill` is when the kill was issued and when it had finished.
pub(super) fn split_errors(errors: &[OpError], kill: Option<(Duration, Duration)>) -> ErrorSplit {
    let mut s = ErrorSplit::default();
    for e in errors {
        match kill {
            Some((issued, done)) if e.started <= done && e.ended >= issued => s.in_flight += 1,
            Some((_, done)) if e.started > done => s.after_kill += 1,
            _ => s.before_kill += 1,
        }
    }
    s
}

/// Everything the summary prints and judges.
pub(super) struct Summary {
    writes: WriteCheck,
    errors: ErrorSplit,
    /// "op: message" → (in flight at the kill, other).
    kinds: BTreeMap<String, (usize, usize)>,
    kill: Option<(Duration, Duration)>,
    promote: (Option<Duration>, Option<Duration>),
    first_write_after_kill: Option<Duration>,
    slowest_insert: Duration,
    selects: u64,
    missed_own_write: u64,
    reconnects: u64,
    stuck: usize,
    new_primary: u16,
}

impl Summary {
    pub(super) fn new(
        shared: &Shared,
        logs: &[ClientLog],
        rows: &HashMap<i64, i64>,
        stuck: usize,
        new_primary: u16,
    ) -> Self {
        let acked: Vec<i64> = logs
            .iter()
            .flat_map(|l| l.acked.iter().map(|a| a.0))
            .collect();
        let failed: Vec<i64> = logs.iter().flat_map(|l| l.failed.iter().copied()).collect();
        let errors: Vec<OpError> = logs.iter().flat_map(|l| l.errors.iter().cloned()).collect();
        let kill = shared
            .event(Event::KillIssued)
            .zip(shared.event(Event::KillDone));
        let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for e in &errors {
            let k = kinds
                .entry(format!("{}: {}", e.op.as_str(), e.message))
                .or_default();
            if split_errors(std::slice::from_ref(e), kill).in_flight == 1 {
                k.0 += 1;
            } else {
                k.1 += 1;
            }
        }
        let first_write_after_kill = kill.and_then(|(_, done)| {
            logs.iter()
                .flat_map(|l| l.acked.iter().map(|a| a.1))
                .filter(|t| *t > done)
                .min()
        });
        Summary {
            writes: check_writes(&acked, &failed, rows),
            errors: split_errors(&errors, kill),
            kinds,
            kill,
            promote: (
                shared.event(Event::PromoteIssued),
                shared.event(Event::PromoteDone),
            ),
            first_write_after_kill,
            slowest_insert: logs
                .iter()
                .map(|l| l.slowest_insert)
                .max()
                .unwrap_or_default(),
            selects: logs.iter().map(|l| l.selects).sum(),
            missed_own_write: logs.iter().map(|l| l.missed_own_write).sum(),
            reconnects: logs.iter().map(|l| l.reconnects).sum(),
            stuck,
            new_primary,
        }
    }

    /// Prints the summary; `failover_ms` is Attaché's own measure of how
    /// long the cluster had no primary.
    pub(super) fn print(&self, failover_ms: Option<u64>) {
        let w = &self.writes;
        println!("\nSummary");
        println!(
            "  acknowledged inserts: {} | on the new primary :{}: {} present exactly once, {} lost, {} duplicated",
            w.acked, self.new_primary, w.present_once, w.missing, w.duplicated
        );
        println!(
            "  failed inserts (outcome unknown to the client): {}, of which {} committed anyway{}",
            w.failed,
            w.failed_committed,
            if w.unknown > 0 {
                format!(" | {} rows nobody inserted", w.unknown)
            } else {
                String::new()
            }
        );
        println!(
            "  reads: {} ok, {} did not see the client's own insert",
            self.selects, self.missed_own_write
        );
        let e = &self.errors;
        println!(
            "  client errors: {} in total: {} in flight at the kill, {} after it, {} before it",
            e.before_kill + e.in_flight + e.after_kill,
            e.in_flight,
            e.after_kill,
            e.before_kill
        );
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by_key(|(_, (a, b))| std::cmp::Reverse(a + b));
        for (kind, (in_flight, other)) in kinds.iter().take(ERROR_KINDS_SHOWN) {
            println!(
                "    {:>4} × {kind}  ({in_flight} in flight at the kill)",
                in_flight + other
            );
        }
        self.print_timing(failover_ms);
        println!(
            "  reconnects: {} | clients still waiting at the end: {}",
            self.reconnects, self.stuck
        );
        match self.verdict() {
            Ok(()) => println!(
                "Failover OK: every acknowledged insert is on the new primary exactly once."
            ),
            Err(why) => println!("Failover check FAILED: {why}"),
        }
    }

    fn print_timing(&self, failover_ms: Option<u64>) {
        let secs = |d: Duration| format!("+{:.2}s", d.as_secs_f64());
        if let Some((issued, _)) = self.kill {
            print!("  primary killed at {}", secs(issued));
        }
        if let (Some(issued), Some(done)) = self.promote {
            print!(
                "; promotion issued at {}, standby out of recovery at {}",
                secs(issued),
                secs(done)
            );
        }
        println!();
        match (self.first_write_after_kill, self.promote.0) {
            (Some(first), Some(promoted)) => println!(
                "  time from promotion to the first successful write: {} ms (at {})",
                first.as_millis() as i128 - promoted.as_millis() as i128,
                secs(first)
            ),
            _ => println!("  time from promotion to the first successful write: none succeeded"),
        }
        println!(
            "  slowest acknowledged insert: {} ms (held by Attaché while there was no primary)",
            self.slowest_insert.as_millis()
        );
        if let Some(ms) = failover_ms {
            println!("  Attaché was without a primary for {ms} ms");
        }
    }

    /// Whether the numbers are sane; otherwise what is wrong.
    pub(super) fn verdict(&self) -> Result<(), String> {
        let w = &self.writes;
        let mut wrong = Vec::new();
        if w.missing > 0 {
            wrong.push(format!("{} acknowledged inserts lost", w.missing));
        }
        if w.duplicated > 0 {
            wrong.push(format!("{} ids inserted more than once", w.duplicated));
        }
        if w.unknown > 0 {
            wrong.push(format!("{} rows nobody inserted", w.unknown));
        }
        if self.first_write_after_kill.is_none() {
            wrong.push("no write succeeded after the promotion".to_string());
        }
        if self.errors.after_kill + self.errors.before_kill > 0 {
            wrong.push(format!(
                "{} client errors outside the kill (only work in flight at the kill may fail)",
                self.errors.after_kill + self.errors.before_kill
            ));
        }
        if self.stuck > 0 {
            wrong.push(format!("{} clients still waiting at the end", self.stuck));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}

#[cfg(test)]
mod tests;
