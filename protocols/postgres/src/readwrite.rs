//! Route: decides whether a query string may run on a read replica
//! (accept → parse → **route** → backend → respond).
//!
//! Statements are classified with PostgreSQL's own grammar (pg_query), and
//! the primary is the default: a string is a [`Route::Read`] only when every
//! statement in it is recognisably a read, and anything unparseable or
//! unknown is a [`Route::Write`]. Reads are:
//!
//! - SELECT / VALUES / TABLE (set operations and subqueries included) with no
//!   locking clause anywhere, no `SELECT … INTO`, no data-modifying CTE, and
//!   only calls to functions on the read-only allow-list (built-in, plus the
//!   names configured as read-only);
//! - SHOW; plain EXPLAIN (it does not execute); EXPLAIN ANALYZE of a read;
//! - `BEGIN`/`START TRANSACTION … READ ONLY`, `SET TRANSACTION … READ ONLY`,
//!   a plain `BEGIN` immediately followed by `SET TRANSACTION READ ONLY`, and
//!   COMMIT/ROLLBACK (and savepoints) of a read-only transaction the same
//!   string opened.
//!
//! Parse trees deeper than the protobuf decoder's recursion limit (about 16
//! nested scalar subqueries, or 45 nested function calls) fail to decode and
//! so go to the primary too.
//!
//! Independently of the route, a `/* attache: role=primary|replica */`
//! comment gives a per-query [`RoleHint`] (found with PostgreSQL's lexer, so
//! `--` comments and string literals never count), and
//! [`session_role_command`] recognises the session-wide `SET attache.role`.
//! Applying hints, and keeping a session on the primary once it writes or
//! opens a read-write transaction, is the runtime's job.

mod cache;
mod functions;
mod hint;
mod session;
mod statement;
mod walk;

pub use session::session_role_command;

/// Where a query string may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Every statement only reads: a replica may serve it.
    Read,
    /// Writes, or might: the primary must serve it.
    Write,
}

/// A routing override chosen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleHint {
    Primary,
    Replica,
}

/// The classification of one query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// What the statements themselves need; a hint does not change it.
    pub route: Route,
    /// The hint comment in the text, if any.
    pub hint: Option<RoleHint>,
}

/// Classifies query strings, caching results by exact text. Shared by all
/// sessions (`Send + Sync`).
pub struct Classifier {
    functions: functions::FunctionPolicy,
    cache: cache::Cache,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("functions", &self.functions)
            .field("cached", &self.cache_len())
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// `extra_read_only`: functions declared read-only, as `name` or
    /// `schema.name`, compared case-insensitively. An entry `name` also
    /// covers schema-qualified calls `any_schema.name`; an entry
    /// `schema.name` covers only calls written with that schema.
    /// `cache_capacity`: the most statement texts kept (0 disables caching).
    pub fn new(extra_read_only: impl IntoIterator<Item = String>, cache_capacity: usize) -> Self {
        Self {
            functions: functions::FunctionPolicy::new(extra_read_only),
            cache: cache::Cache::new(cache_capacity),
        }
    }

    /// Classifies one simple-query string (or one extended-protocol Parse
    /// text). Never panics; unparseable text is a [`Route::Write`].
    pub fn classify(&self, sql: &str) -> Classified {
        if is_obvious_write(sql) {
            // Not cached: cheaper to recompute than to displace reads.
            return Classified {
                route: Route::Write,
                hint: hint::find(sql),
            };
        }
        if let Some(cached) = self.cache.get(sql) {
            return cached;
        }
        let classified = Classified {
            route: statement::classify(sql, &self.functions),
            hint: hint::find(sql),
        };
        self.cache.insert(sql, classified);
        classified
    }

    /// How many statement texts are cached now.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

/// First keywords that make a single statement a write whatever follows.
const WRITE_KEYWORDS: &[&str] = &[
    "ALTER", "ANALYZE", "CALL", "CLUSTER", "COMMENT", "COPY", "CREATE", "DELETE", "DO", "DROP",
    "GRANT", "INSERT", "LISTEN", "LOCK", "MERGE", "NOTIFY", "REFRESH", "REINDEX", "REVOKE",
    "SECURITY", "TRUNCATE", "UPDATE", "VACUUM",
];

/// The parser-free fast path: a single statement (no `;` except trailing
/// ones) whose first keyword always means a write. A `;` inside a literal or
/// comment just means the parser decides. Reads never take this path.
fn is_obvious_write(sql: &str) -> bool {
    let body = crate::classify::skip_leading_comments(sql);
    let word_len = body
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(body.len());
    let word = &body[..word_len];
    if !WRITE_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) {
        return false;
    }
    let trimmed = body.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    !trimmed.contains(';')
}

#[cfg(test)]
mod tests;
