use super::*;
use crate::admin::http::Request;
use crate::admin::{Admin, ListenerInfo};
use crate::config::types::Secret;

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

fn request(method: &str, path: &str) -> Request {
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: vec![("host".to_owned(), "x".to_owned())],
        keep_alive: true,
        has_body: false,
    }
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_page_is_served_without_a_token_even_when_one_is_configured() {
    let a = admin(Some("s3cret"));
    let r = a.respond(&request("GET", "/"));
    assert_eq!(
        (r.status, r.content_type),
        (200, "text/html; charset=utf-8")
    );
    assert_eq!(r.body, HTML.as_bytes());
    // Its data stays guarded.
    assert_eq!(a.respond(&request("GET", "/status")).status, 401);
    let head = a.respond(&request("HEAD", "/"));
    assert_eq!((head.status, head.content_type), (200, CONTENT_TYPE));
    let post = a.respond(&request("POST", "/"));
    assert_eq!(post.status, 405);
    assert_eq!(header(&post, "Allow"), Some("GET, HEAD"));
}

#[test]
fn the_page_polls_status_and_sends_the_token_as_a_bearer_header() {
    assert!(HTML.contains("fetch(\"/status\""), "the page reads /status");
    assert!(
        HTML.contains("get(\"token\")"),
        "the token comes from ?token="
    );
    assert!(HTML.contains("Authorization: \"Bearer \" + token"));
    assert!(
        HTML.contains("setTimeout(tick"),
        "the page refreshes itself"
    );
    assert!(HTML.starts_with("<!doctype html>"));
    assert!(HTML.trim_end().ends_with("</html>"));
}

#[test]
fn the_page_loads_nothing_from_elsewhere() {
    for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
        assert!(!HTML.contains(external), "page references {external}");
    }
    let r = response();
    let csp = header(&r, "Content-Security-Policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(header(&r, "Referrer-Policy"), Some("no-referrer"));
}

#[test]
fn unknown_paths_name_the_page_in_their_hint() {
    let r = admin(None).respond(&request("GET", "/nope"));
    assert_eq!(r.status, 404);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("try /, /healthz"), "{body}");
}
