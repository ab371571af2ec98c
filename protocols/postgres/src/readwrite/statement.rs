//! Route (read/write classification): the per-statement rules, applied to
//! pg_query's parse tree of a whole query string.
//!
//! A string is a read only if every statement in it is; anything not
//! recognised as a read is a write, so the primary is the default.

use pg_query::protobuf::{self, node::Node as N, TransactionStmtKind};

use super::functions::FunctionPolicy;
use super::walk;
use super::Route;

/// Classifies a whole query string with PostgreSQL's grammar. Text the
/// grammar rejects (or that pg_query cannot take, such as a NUL byte) is a
/// write.
pub(super) fn classify(sql: &str, policy: &FunctionPolicy) -> Route {
    // pg_query builds some summaries of the tree while parsing; never let a
    // surprise there take the proxy down.
    let parsed = std::panic::catch_unwind(|| pg_query::parse(sql, 0));
    let Ok(Ok(parsed)) = parsed else {
        return Route::Write;
    };
    let stmts = &parsed.protobuf.stmts;
    if stmts.is_empty() {
        return Route::Write;
    }
    let mut tx = TxState::default();
    for raw in stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return Route::Write;
        };
        if !tx.accept(node, policy) {
            return Route::Write;
        }
    }
    if tx.begin_pending {
        // A plain BEGIN that no SET TRANSACTION READ ONLY followed.
        return Route::Write;
    }
    Route::Read
}

/// What the statements seen so far in one string did to the transaction.
#[derive(Debug, Default)]
struct TxState {
    /// This string opened a read-only transaction that is still open, so its
    /// COMMIT/ROLLBACK ends a read-only transaction.
    read_only_open: bool,
    /// The previous statement was a plain BEGIN: a read only if the next
    /// statement is SET TRANSACTION READ ONLY.
    begin_pending: bool,
}

impl TxState {
    /// Whether `node` keeps the string a read, updating the state.
    fn accept(&mut self, node: &N, policy: &FunctionPolicy) -> bool {
        if std::mem::take(&mut self.begin_pending) {
            let read_only = is_set_transaction_read_only(node);
            self.read_only_open = read_only;
            return read_only;
        }
        match node {
            N::TransactionStmt(stmt) => self.transaction(stmt),
            N::VariableSetStmt(_) => is_set_transaction_read_only(node),
            other => is_read_statement(other, policy),
        }
    }

    fn transaction(&mut self, stmt: &protobuf::TransactionStmt) -> bool {
        use TransactionStmtKind as K;
        match TransactionStmtKind::try_from(stmt.kind) {
            Ok(K::TransStmtBegin | K::TransStmtStart) => match read_only_option(&stmt.options) {
                Some(true) => {
                    self.read_only_open = true;
                    true
                }
                Some(false) => false,
                None => {
                    self.begin_pending = true;
                    true
                }
            },
            Ok(K::TransStmtCommit | K::TransStmtRollback) if self.read_only_open => {
                // COMMIT AND CHAIN starts another transaction just like it.
                self.read_only_open = stmt.chain;
                true
            }
            // Savepoints inside a read-only transaction cannot write either.
            Ok(K::TransStmtSavepoint | K::TransStmtRelease | K::TransStmtRollbackTo) => {
                self.read_only_open
            }
            _ => false,
        }
    }
}

/// Statements that are reads on their own, whatever surrounds them.
fn is_read_statement(node: &N, policy: &FunctionPolicy) -> bool {
    match node {
        N::SelectStmt(_) => walk::is_read(node, policy),
        N::VariableShowStmt(_) => true,
        N::ExplainStmt(explain) => {
            if !explain_analyzes(&explain.options) {
                // Plain EXPLAIN plans without executing anything.
                return true;
            }
            match explain.query.as_deref().and_then(|q| q.node.as_ref()) {
                Some(inner @ N::SelectStmt(_)) => walk::is_read(inner, policy),
                _ => false,
            }
        }
        _ => false,
    }
}

/// `SET TRANSACTION … READ ONLY …` (any other characteristics allowed).
fn is_set_transaction_read_only(node: &N) -> bool {
    match node {
        N::VariableSetStmt(set) => {
            set.kind == protobuf::VariableSetKind::VarSetMulti as i32
                && set.name.eq_ignore_ascii_case("TRANSACTION")
                && read_only_option(&set.args) == Some(true)
        }
        _ => false,
    }
}

/// The last `transaction_read_only` option among BEGIN's or SET TRANSACTION's
/// characteristics: `Some(true)` for READ ONLY, `Some(false)` for READ WRITE
/// (or anything unexpected), `None` when absent.
fn read_only_option(options: &[protobuf::Node]) -> Option<bool> {
    options
        .iter()
        .rev()
        .find_map(|o| match o.node.as_ref() {
            Some(N::DefElem(d)) if d.defname == "transaction_read_only" => Some(d),
            _ => None,
        })
        .map(|d| def_bool(d.arg.as_deref()) == Some(true))
}

/// Whether EXPLAIN's options include ANALYZE (which executes the statement).
/// An ANALYZE value we cannot read counts as ANALYZE: when in doubt, the
/// inner statement decides.
fn explain_analyzes(options: &[protobuf::Node]) -> bool {
    options.iter().any(|o| match o.node.as_ref() {
        Some(N::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze") => {
            def_bool(d.arg.as_deref()) != Some(false)
        }
        _ => false,
    })
}

/// A boolean option value as PostgreSQL's `defGetBoolean` reads it: absent
/// means true; `None` for a value that is not a boolean.
fn def_bool(arg: Option<&protobuf::Node>) -> Option<bool> {
    let Some(node) = arg.and_then(|a| a.node.as_ref()) else {
        return Some(true);
    };
    match node {
        N::Integer(i) => int_bool(i.ival),
        N::Boolean(b) => Some(b.boolval),
        N::String(s) => text_bool(&s.sval),
        N::AConst(c) => match c.val.as_ref() {
            Some(protobuf::a_const::Val::Ival(i)) => int_bool(i.ival),
            Some(protobuf::a_const::Val::Boolval(b)) => Some(b.boolval),
            Some(protobuf::a_const::Val::Sval(s)) => text_bool(&s.sval),
            _ => None,
        },
        _ => None,
    }
}

fn int_bool(value: i32) -> Option<bool> {
    match value {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn text_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}
