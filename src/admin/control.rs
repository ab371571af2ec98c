//! Admin (respond): the operator's levers over HTTP: `POST /reload`,
//! `POST /pause[/DB]`, `POST /resume[/DB]`. They do what SIGHUP and the
//! console's RELOAD, PAUSE and RESUME do.

use super::http::{Request, Response};
use super::Admin;

impl Admin {
    /// Routes a control request; `None` when `path` is not one.
    pub(super) fn control(&self, req: &Request) -> Option<Response> {
        let path = req.path.as_str();
        let (verb, db) = match path.split_once('/').map(|(_, rest)| rest)? {
            "reload" => ("reload", None),
            "pause" => ("pause", None),
            "resume" => ("resume", None),
            rest => match rest.split_once('/') {
                Some(("pause", db)) if !db.is_empty() => ("pause", Some(db)),
                Some(("resume", db)) if !db.is_empty() => ("resume", Some(db)),
                _ => return None,
            },
        };
        if req.method != "POST" {
            return Some(
                Response::text(405, format!("method {} not allowed (use POST)", req.method))
                    .with_header("Allow", "POST"),
            );
        }
        Some(match verb {
            "reload" => self.reload(),
            "pause" => self.pause(db),
            _ => self.resume(db),
        })
    }

    fn reload(&self) -> Response {
        let Some(r) = &self.reloader else {
            return Response::text(503, "reload is not available in this process");
        };
        match r.reload_from_source() {
            Ok(outcome) => Response::text(200, outcome.to_string()),
            Err(e) => Response::text(422, e.to_string()),
        }
    }

    fn pause(&self, db: Option<&str>) -> Response {
        let Some(pg) = &self.postgres() else {
            return Response::text(404, "no [postgres] listener to pause");
        };
        if let Some(db) = db {
            if !pg.config().databases.contains_key(db) {
                return Response::text(404, format!("no database {db:?} in [postgres.databases]"));
            }
        }
        let active = pg.begin_pause(db);
        let what = db.map_or("all databases".to_owned(), |d| format!("database {d:?}"));
        Response::text(
            200,
            format!(
                "paused {what}: new transactions wait; {active} server connection(s) still finishing\n"
            ),
        )
    }

    fn resume(&self, db: Option<&str>) -> Response {
        let Some(pg) = &self.postgres() else {
            return Response::text(404, "no [postgres] listener to resume");
        };
        pg.resume(db);
        let what = db.map_or("all databases".to_owned(), |d| format!("database {d:?}"));
        Response::text(200, format!("resumed {what}\n"))
    }
}
