//! No-panic checks over garbled and pathological query strings.

use super::super::{Classifier, Route};
use super::table::TABLE;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that stress the lexer and the classifier's own text handling.
const PIECES: &[&str] = &[
    "(",
    ")",
    ";",
    "'",
    "\"",
    "$$",
    "$x$",
    "/*",
    "*/",
    "--",
    "\n",
    " ",
    "\0",
    "é",
    "€",
    "𝄞",
    "\\",
    "E'",
    "U&'",
    "[",
    "]",
    "::",
    "=",
    "SELECT",
    "INSERT",
    "FOR UPDATE",
    "WITH",
    "nextval(",
    "/* attache: role=replica */",
    "attache",
    "BEGIN",
    "READ ONLY",
    "COMMIT",
    "EXPLAIN",
    "ANALYZE",
    "INTO",
    "RETURNING",
    "UNION",
    ",",
    "*",
    "0",
    "1e999",
    "$1",
];

fn mutate(rng: &mut Rng, base: &str) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 => {
                let piece = PIECES[rng.below(PIECES.len())];
                chars.splice(at..at, piece.chars());
            }
            1 if at < chars.len() => {
                let end = (at + 1 + rng.below(6)).min(chars.len());
                chars.drain(at..end);
            }
            2 => chars.truncate(at),
            _ => {
                let other = TABLE[rng.below(TABLE.len())].0;
                chars.splice(at..at, format!("; {other}").chars());
            }
        }
    }
    chars.into_iter().collect()
}

fn random_text(rng: &mut Rng) -> String {
    (0..rng.below(12))
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect::<Vec<_>>()
        .join(if rng.below(2) == 0 { " " } else { "" })
}

#[test]
fn garbled_input_never_panics_and_unparseable_is_write() {
    let classifier = Classifier::new(vec!["ro_fn".to_string()], 256);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..4000 {
        let sql = if i % 4 == 3 {
            random_text(&mut rng)
        } else {
            let base = TABLE[rng.below(TABLE.len())].0;
            mutate(&mut rng, base)
        };
        let first = classifier.classify(&sql);
        assert_eq!(
            classifier.classify(&sql),
            first,
            "unstable result for {sql:?}"
        );
        if pg_query::parse(&sql, 0).is_err() {
            assert_eq!(
                first.route,
                Route::Write,
                "unparseable but routed as a read: {sql:?}"
            );
        }
        if first.hint.is_some() {
            assert!(sql.to_ascii_lowercase().contains("attache"), "{sql:?}");
        }
        let _ = super::super::session_role_command(&sql);
    }
    assert!(classifier.cache_len() <= 256);
}

/// Deep nesting must end in a parse error or a result, never a stack
/// overflow, on a thread with the 2 MiB stack async runtimes give workers.
/// (Trees deeper than prost's decode recursion limit of 100 messages, e.g.
/// ~16 nested scalar subqueries, fail to decode and go to the primary.)
#[test]
fn deep_nesting_does_not_overflow_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let classifier = Classifier::new(Vec::new(), 16);
            for depth in [10, 100, 1_000, 10_000, 100_000] {
                let nested = |open: &str, inner: &str, close: &str| {
                    format!(
                        "SELECT {}{inner}{}",
                        open.repeat(depth),
                        close.repeat(depth)
                    )
                };
                for sql in [
                    nested("(", "1", ")"),
                    nested("abs(", "1", ")"),
                    nested("(SELECT ", "1", ")"),
                    nested("ARRAY[", "1", "]"),
                    nested("- ", "1", ""),
                    nested("NOT ", "true", ""),
                    nested("CASE WHEN true THEN ", "1", " END"),
                    format!(
                        "SELECT * FROM {}t{}",
                        "(SELECT * FROM ".repeat(depth),
                        ") s".repeat(depth)
                    ),
                    format!("SELECT 1{}", " UNION SELECT 1".repeat(depth)),
                ] {
                    let route = classifier.classify(&sql).route;
                    let head = &sql[..sql.len().min(40)];
                    if depth <= 10 {
                        assert_eq!(route, Route::Read, "{head}");
                    } else if depth >= 10_000 {
                        // Beyond the parser's limits: in doubt, the primary.
                        assert_eq!(route, Route::Write, "{head}");
                    }
                }
            }
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn huge_input_is_handled() {
    let classifier = Classifier::new(Vec::new(), 16);
    let many = "SELECT 1;".repeat(20_000);
    assert_eq!(classifier.classify(&many).route, Route::Read);
    let many_with_write = format!("{many} DELETE FROM t");
    assert_eq!(classifier.classify(&many_with_write).route, Route::Write);
    let long_literal = format!("SELECT '{}'", "x".repeat(1 << 20));
    assert_eq!(classifier.classify(&long_literal).route, Route::Read);
    assert_eq!(classifier.cache_len(), 0);
}
