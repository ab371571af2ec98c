use super::*;
use crate::config::{self, ConfigError};

fn admin(token: Option<&str>) -> Admin {
    Admin::new(
        vec![ListenerInfo {
            protocol: "admin",
            addr: "127.0.0.1:9".parse().unwrap(),
        }],
        None,
        None,
        token.map(|t| Secret(t.to_owned())),
    )
}

fn get(path: &str, auth: Option<&str>) -> Request {
    request("GET", path, auth)
}

fn request(method: &str, path: &str, auth: Option<&str>) -> Request {
    let mut headers = vec![("host".to_owned(), "x".to_owned())];
    if let Some(a) = auth {
        headers.push(("authorization".to_owned(), a.to_owned()));
    }
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        keep_alive: true,
        has_body: false,
    }
}

fn body(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[test]
fn endpoints_answer_without_a_token_configured() {
    let a = admin(None);
    let r = a.respond(&get("/healthz", None));
    assert_eq!((r.status, body(&r).as_str()), (200, "ok\n"));
    let r = a.respond(&get("/readyz", None));
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("admin listening on 127.0.0.1:9"));
    let r = a.respond(&get("/metrics", None));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, metrics::CONTENT_TYPE);
    assert!(body(&r).ends_with("# EOF\n"));
    let r = a.respond(&get("/status", None));
    assert_eq!((r.status, r.content_type), (200, http::JSON));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["listeners"][0]["protocol"], "admin");
    assert!(v["postgres"].is_null());
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let a = admin(None);
    let r = a.respond(&get("/nope", None));
    assert_eq!(r.status, 404);
    assert!(body(&r).contains("/nope"));
    for path in ["/healthz", "/metrics"] {
        let r = a.respond(&request("POST", path, None));
        assert_eq!(r.status, 405, "{path}");
        assert!(r.headers.contains(&("Allow", "GET, HEAD".to_owned())));
        assert!(body(&r).contains("POST"));
    }
    assert_eq!(a.respond(&request("HEAD", "/status", None)).status, 200);
}

#[test]
fn a_configured_token_guards_everything_but_healthz() {
    let a = admin(Some("s3cret"));
    assert_eq!(a.respond(&get("/healthz", None)).status, 200);
    for path in ["/readyz", "/metrics", "/status", "/nope"] {
        let r = a.respond(&get(path, None));
        assert_eq!(r.status, 401, "{path}");
        assert!(body(&r).contains("Bearer"));
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| *n == "WWW-Authenticate" && v.starts_with("Bearer")));
    }
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        assert_eq!(
            a.respond(&get("/metrics", Some(wrong))).status,
            401,
            "{wrong}"
        );
    }
    assert_eq!(
        a.respond(&get("/metrics", Some("Bearer s3cret"))).status,
        200
    );
    assert_eq!(
        a.respond(&get("/status", Some("bearer s3cret"))).status,
        200
    );
    assert_eq!(a.respond(&get("/nope", Some("Bearer s3cret"))).status, 404);
}

#[test]
fn constant_time_eq_compares_whole_strings() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(constant_time_eq(b"", b""));
}

const PG: &str = "[postgres]\nlisten = \"127.0.0.1:6432\"\n[postgres.databases.app]\nnodes = [{ addr = \"127.0.0.1:5432\" }]\n";

fn problems(text: &str) -> Vec<String> {
    match config::parse(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn admin_section_defaults_and_absence() {
    let cfg = config::parse(&format!("{PG}[admin]\n")).unwrap();
    let admin = cfg.admin.unwrap();
    assert_eq!(admin.listen, "127.0.0.1:15001");
    assert!(admin.token.is_none());
    assert!(config::parse(PG).unwrap().admin.is_none());
    assert!(config::builtin_default().admin.is_none());
}

#[test]
fn a_bad_admin_listen_address_is_named() {
    let p = problems(&format!("{PG}[admin]\nlisten = \"x\"\n"));
    assert_eq!(
        p,
        vec!["admin.listen: invalid socket address \"x\"".to_owned()]
    );
}

#[test]
fn admin_listen_may_not_take_a_proxied_listener_address() {
    let p = problems(&format!("{PG}[admin]\nlisten = \"127.0.0.1:6432\"\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("admin.listen: "), "{p:?}");
    assert!(p[0].contains("postgres.listen"), "{p:?}");
    assert!(problems(&format!("{PG}[admin]\nlisten = \"127.0.0.1:0\"\n")).is_empty());
}

#[test]
fn admin_tokens_must_be_sendable_and_are_never_shown() {
    let p = problems(&format!("{PG}[admin]\ntoken = \"\"\n"));
    assert!(p[0].starts_with("admin.token: must not be empty"), "{p:?}");
    let p = problems(&format!("{PG}[admin]\ntoken = \"has space\"\n"));
    assert!(p[0].starts_with("admin.token: "), "{p:?}");
    assert!(
        !p[0].contains("has space"),
        "the token is not echoed: {p:?}"
    );

    let cfg = config::parse(&format!("{PG}[admin]\ntoken = \"tok-123\"\n")).unwrap();
    assert_eq!(
        cfg.admin
            .as_ref()
            .and_then(|a| a.token.as_ref())
            .map(|t| t.expose()),
        Some("tok-123")
    );
    assert!(!format!("{cfg:?}").contains("tok-123"));
    let shown = config::render_redacted(&cfg);
    assert!(!shown.contains("tok-123"));
    assert!(shown.contains("[admin]"), "{shown}");
    config::parse(&shown).unwrap();
}

#[test]
fn unknown_admin_keys_are_rejected() {
    let e = config::parse(&format!("{PG}[admin]\nlisten_addr = \"127.0.0.1:1\"\n")).unwrap_err();
    assert!(matches!(e, ConfigError::Toml(_)), "{e}");
    assert!(e.to_string().contains("listen_addr"), "{e}");
}
