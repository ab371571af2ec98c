use super::*;
use crate::config::http::RouteConfig;

fn route(prefix: &str, host: Option<&str>, strip: bool, rewrite: Option<&str>) -> RouteConfig {
    let mut r: RouteConfig = toml::from_str("cluster = \"c\"").unwrap();
    r.prefix = prefix.into();
    r.host = host.map(Into::into);
    r.strip_prefix = strip;
    r.rewrite = rewrite.map(Into::into);
    r
}

#[test]
fn first_match_wins_by_host_then_prefix() {
    let router = Router::new(&[
        route("/payments/", None, true, None),
        route("/", Some("api.example.com"), false, None),
        route("/", Some("*.internal"), false, None),
        route("/static/", None, false, None),
    ]);
    let cases: &[(Option<&str>, &str, Option<usize>)] = &[
        (None, "/payments/charge", Some(0)),
        (Some("api.example.com"), "/payments/x", Some(0)),
        (Some("API.example.com:8080"), "/users", Some(1)),
        (Some("svc.internal"), "/a", Some(2)),
        (Some("internal"), "/a", None),
        (Some("x.internal:80"), "/a", Some(2)),
        (None, "/static/app.js", Some(3)),
        (None, "/payments", None),
        (Some("other.com"), "/nope", None),
    ];
    for (host, path, want) in cases {
        assert_eq!(router.find(*host, path), *want, "{host:?} {path}");
    }
}

#[test]
fn strip_and_rewrite_keep_a_valid_target() {
    let router = Router::new(&[
        route("/payments/", None, true, None),
        route("/v1/", None, false, Some("/api/v2/")),
        route("/keep/", None, false, None),
        route("/bare", None, true, None),
    ]);
    let cases: &[(usize, &str, Option<&str>)] = &[
        (0, "/payments/charge?id=1", Some("/charge?id=1")),
        (0, "/payments/", Some("/")),
        (1, "/v1/users/7", Some("/api/v2/users/7")),
        (1, "/v1/", Some("/api/v2/")),
        (2, "/keep/x", None),
        (3, "/bare", Some("/")),
        (3, "/bare?q=1", Some("/?q=1")),
        (3, "/bare/x", Some("/x")),
    ];
    for (r, pq, want) in cases {
        assert_eq!(router.rewrite(*r, pq).as_deref(), *want, "{pq}");
    }
}
