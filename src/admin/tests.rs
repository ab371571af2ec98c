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
    assert!(v["http"].is_null());
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

fn http_listeners() -> Vec<ListenerInfo> {
    vec![
        ListenerInfo {
            protocol: "http",
            addr: "127.0.0.1:15000".parse().unwrap(),
        },
        ListenerInfo {
            protocol: "admin",
            addr: "127.0.0.1:9".parse().unwrap(),
        },
    ]
}

#[tokio::test]
async fn status_has_an_http_section_with_routes_clusters_and_endpoints() {
    use crate::core::http::endpoint::Outcome;
    use std::time::Duration;
    let ctx = test_support::http_context();
    let route = &ctx.routes()[0];
    route.stats.response(200, Duration::from_millis(2));
    route.stats.response(502, Duration::from_millis(2));
    route.stats.retried();
    route.cluster.stats.response(200, Duration::from_millis(2));
    route.cluster.stats.retried();
    route.cluster.stats.overflowed();
    ctx.unmatched.response(404, Duration::from_millis(1));
    let payments = ctx.clusters["payments"].clone();
    let first = payments.endpoints()[0].clone();
    for _ in 0..5 {
        payments.report(&first, Outcome::ServerError);
    }
    let second = payments.endpoints()[1].clone();
    let _try = second.start();
    second.observe_latency(Duration::from_millis(40), std::time::Instant::now());
    ctx.clusters["api"].endpoints()[0].set_healthy(false);
    let a = test_support::http_admin(ctx, http_listeners());

    let r = a.respond(&get("/status", None));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let h = &v["http"];
    assert_eq!(h["listen"], "127.0.0.1:15000");
    assert_eq!(h["clients"], 0);
    assert_eq!(h["unmatched"]["4xx"], 1);
    let routes = h["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["prefix"], "/payments/");
    assert!(routes[0]["host"].is_null());
    assert_eq!(routes[0]["cluster"], "payments");
    assert_eq!(routes[0]["requests"]["2xx"], 1);
    assert_eq!(routes[0]["requests"]["5xx"], 1);
    assert_eq!(routes[0]["requests"]["4xx"], 0);
    assert_eq!(routes[0]["retries"], 1);
    assert_eq!(routes[1]["host"], "api.example.com");
    assert_eq!(routes[1]["prefix"], "/");
    assert_eq!(routes[1]["cluster"], "api");

    let c = &h["clusters"]["payments"];
    assert_eq!(c["retries"], 1);
    assert_eq!(c["ejections"], 1);
    assert_eq!(c["overflows"], 1);
    assert_eq!(c["requests"]["2xx"], 1);
    assert_eq!(c["active_requests"], 0);
    assert_eq!(c["pending_requests"], 0);
    assert_eq!(c["pool"]["open"], 0);
    assert_eq!(c["pool"]["idle"], 0);
    let eps = c["endpoints"].as_array().unwrap();
    assert_eq!(eps[0]["addr"], "127.0.0.1:1");
    assert_eq!(eps[0]["host"], "127.0.0.1");
    assert_eq!(eps[0]["available"], false);
    assert_eq!(eps[0]["ejected"], true);
    assert_eq!(eps[0]["healthy"], true);
    assert_eq!(eps[0]["ejections"], 1);
    assert_eq!(eps[1]["weight"], 3);
    assert_eq!(eps[1]["available"], true);
    assert_eq!(eps[1]["outstanding"], 1);
    assert_eq!(eps[1]["ewma_ms"], 40.0);
    let api = &h["clusters"]["api"]["endpoints"][0];
    assert_eq!(
        (&api["available"], &api["ejected"], &api["healthy"]),
        (&false.into(), &false.into(), &false.into())
    );
    // Default estimate before any sample.
    assert_eq!(api["ewma_ms"], 10.0);
}

#[tokio::test]
async fn upstreams_down_do_not_make_the_instance_unready() {
    use crate::core::http::endpoint::Outcome;
    let ctx = test_support::http_context();
    for c in ctx.clusters.values() {
        for e in c.endpoints().iter() {
            e.set_healthy(false);
            for _ in 0..5 {
                c.report(e, Outcome::ServerError);
            }
        }
    }
    let a = test_support::http_admin(ctx, http_listeners());
    let r = a.respond(&get("/readyz", None));
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&r).contains("http listening on 127.0.0.1:15000"));
    let m = body(&a.respond(&get("/metrics", None)));
    assert!(
        m.contains("attache_listener_info{protocol=\"http\",addr=\"127.0.0.1:15000\"} 1"),
        "{m}"
    );
    assert!(m.contains("attache_http_endpoint_up{cluster=\"api\",endpoint=\"127.0.0.1:3\"} 0"));
}

/// A `sentinel` listener whose sentinel (port 1) never answers, with the
/// primary and replicas set as the sentinels would have named them.
fn sentinel_redis(replicas: &[&str]) -> std::sync::Arc<crate::frontend::redis::RedisContext> {
    let cfg = config::parse(
        "[redis]\nlisten = \"127.0.0.1:0\"\nmode = \"sentinel\"\nmaster_name = \"m\"\n\
         nodes = [\"127.0.0.1:1\"]\nread_from = \"replica\"\n",
    )
    .unwrap();
    let redis = crate::frontend::redis::RedisContext::new(cfg.redis.unwrap()).unwrap();
    let s = redis.topology.sentinel().unwrap();
    s.set_primary("10.0.0.1:6379".into());
    s.set_replicas(replicas.iter().map(|r| (*r).to_owned()).collect());
    std::sync::Arc::new(redis)
}

#[tokio::test]
async fn sentinel_replicas_are_listed_with_role_replica() {
    let redis = sentinel_redis(&["10.0.0.3:6379", "10.0.0.2:6379"]);
    let a = Admin::new(Vec::new(), None, Some(redis.clone()), None);
    let r = a.respond(&get("/status", None));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["redis"]["mode"], "sentinel");
    assert_eq!(
        v["redis"]["nodes"],
        serde_json::json!([
            { "addr": "10.0.0.1:6379", "role": "primary" },
            { "addr": "10.0.0.2:6379", "role": "replica" },
            { "addr": "10.0.0.3:6379", "role": "replica" },
        ])
    );
    assert_eq!(a.respond(&get("/readyz", None)).status, 200);

    let m = body(&a.respond(&get("/metrics", None)));
    for (node, role) in [
        ("10.0.0.1:6379", "primary"),
        ("10.0.0.2:6379", "replica"),
        ("10.0.0.3:6379", "replica"),
    ] {
        let series = format!(
            "attache_redis_backend{{mode=\"sentinel\",node=\"{node}\",role=\"{role}\"}} 1\n"
        );
        assert!(m.contains(&series), "{series}{m}");
    }
    assert!(
        m.contains("attache_redis_backends{mode=\"sentinel\"} 3\n"),
        "{m}"
    );

    // A replica the sentinels stop listing leaves both views.
    redis
        .topology
        .sentinel()
        .unwrap()
        .set_replicas(vec!["10.0.0.3:6379".into()]);
    let v: serde_json::Value =
        serde_json::from_slice(&a.respond(&get("/status", None)).body).unwrap();
    let nodes = v["redis"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!(nodes[1]["addr"], "10.0.0.3:6379");
    let m = body(&a.respond(&get("/metrics", None)));
    assert!(!m.contains("10.0.0.2:6379"), "{m}");
}
