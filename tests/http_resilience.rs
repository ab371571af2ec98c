//! HTTP egress resilience end to end, at the backend → respond steps of
//! accept → parse → route → backend → respond: outlier ejection and
//! readmission, retries around dead or resetting endpoints (and not for
//! POST unless allowed; a POST never rides a connection the upstream just
//! closed), the retry budget under a full outage, per-try and
//! overall timeouts, circuit breaking and active health checks, all against
//! real in-process upstream servers switched into failure modes.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::http::{
    get, h1_client, one_answer_per_connection, one_answer_per_connection_after, send, Mode, Reply,
    TestClient, Upstream,
};
use support::{eventually, start_attache};

/// Outlier detection off, so only the behaviour under test steers traffic.
const NO_OUTLIER: &str = "outlier = { consecutive_5xx = 0, consecutive_connect_failures = 0 }";

/// `[http]` with one cluster `svc` over `endpoints` (plus `cluster_extra`
/// lines) and one route per `(prefix, extra lines)`, in order.
fn config(endpoints: &[SocketAddr], cluster_extra: &str, routes: &[(&str, &str)]) -> String {
    let mut toml = String::from("[http]\n");
    for (prefix, extra) in routes {
        toml.push_str(&format!(
            "[[http.routes]]\nprefix = \"{prefix}\"\ncluster = \"svc\"\n{extra}\n"
        ));
    }
    let eps: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    toml.push_str(&format!(
        "[http.clusters.svc]\nendpoints = [{}]\n{cluster_extra}\n",
        eps.join(", ")
    ));
    toml
}

async fn upstream(name: &str, mode: Mode) -> Upstream {
    Upstream::builder()
        .name(name)
        .mode(mode)
        .start()
        .await
        .unwrap()
}

async fn attache_addr(toml: &str) -> (attache::app::Attache, SocketAddr) {
    let attache = start_attache(toml).await;
    let addr = attache.http_addr.expect("the http listener runs");
    (attache, addr)
}

/// Asserts `r` is a 200 served by the upstream named `name`.
fn assert_ok_from(r: &Reply, name: &str) {
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body);
    assert_eq!(r.header("x-upstream"), Some(name), "{:?}", r.headers);
}

/// Asserts `r` is Attaché's own answer with this status and cause.
fn assert_local(r: &Reply, status: u16, cause: &str) {
    assert_eq!(r.status, status, "{:?} {}", r.headers, r.body);
    assert_eq!(r.header("x-attache-error"), Some(cause), "{}", r.body);
    assert_eq!(r.header("x-upstream"), None, "no upstream answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_answering_5xx_is_ejected_then_readmitted() {
    let bad = upstream("bad", Mode::Status(503)).await;
    let good = upstream("good", Mode::Ok).await;
    let cluster =
        r#"outlier = { consecutive_5xx = 3, base_ejection = "2s", max_ejection = "10s" }"#;
    let toml = config(&[bad.addr(), good.addr()], cluster, &[("/", "retries = 0")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    // Round-robin alternates; bad's third 503 in a row ejects it (good's
    // successes in between do not break bad's own streak).
    let mut failures = 0;
    for _ in 0..20 {
        let r = get(&c, addr, "/x", &[]).await;
        if r.status == 503 {
            assert_eq!(r.header("x-upstream"), Some("bad"), "the upstream's 503");
            failures += 1;
            if failures == 3 {
                break;
            }
        } else {
            assert_ok_from(&r, "good");
        }
    }
    let ejected_at = Instant::now();
    assert_eq!(failures, 3);
    let seen_by_bad = bad.requests();
    assert_eq!(seen_by_bad, 3, "bad only saw the tries that failed");

    for _ in 0..20 {
        assert_ok_from(&get(&c, addr, "/x", &[]).await, "good");
    }
    assert_eq!(
        bad.requests(),
        seen_by_bad,
        "an ejected endpoint gets nothing"
    );

    // Restored meanwhile, bad takes traffic again once the 2 s are over.
    bad.set_mode(Mode::Ok);
    tokio::time::sleep_until((ejected_at + Duration::from_millis(2300)).into()).await;
    let mut from_bad = 0;
    for _ in 0..10 {
        let r = get(&c, addr, "/x", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.header("x-upstream") == Some("bad") {
            from_bad += 1;
        }
    }
    assert!(
        from_bad >= 3,
        "readmitted endpoint shares the load: {from_bad}/10"
    );
    assert_eq!(bad.requests(), seen_by_bad + from_bad);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_endpoint_is_ejected_after_connect_failures() {
    let dead = upstream("dead", Mode::Ok).await;
    let live = upstream("live", Mode::Ok).await;
    dead.stop().await;
    let cluster = r#"outlier = { consecutive_connect_failures = 2, base_ejection = "2s" }"#;
    let toml = config(
        &[dead.addr(), live.addr()],
        cluster,
        &[("/", "retries = 0")],
    );
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    let mut failures = 0;
    for _ in 0..20 {
        let r = get(&c, addr, "/x", &[]).await;
        if r.status == 200 {
            assert_ok_from(&r, "live");
            continue;
        }
        assert_local(&r, 503, "connect-failure");
        failures += 1;
        if failures == 2 {
            break;
        }
    }
    let ejected_at = Instant::now();
    assert_eq!(failures, 2);
    let live_before = live.requests();
    for _ in 0..20 {
        assert_ok_from(&get(&c, addr, "/x", &[]).await, "live");
    }
    assert_eq!(
        live.requests(),
        live_before + 20,
        "all traffic went to live"
    );

    dead.restart().await.unwrap();
    tokio::time::sleep_until((ejected_at + Duration::from_millis(2300)).into()).await;
    for _ in 0..10 {
        assert_eq!(get(&c, addr, "/x", &[]).await.status, 200);
    }
    assert!(
        dead.requests() >= 3,
        "back after the ejection: {}",
        dead.requests()
    );
    attache.shutdown().await;
}

/// Two endpoints, `ok` and `broken`; `/retry/` retries twice, `/once/`
/// never. Every retried GET succeeds; some single tries fail with `cause`.
async fn retries_hide(broken: &Upstream, ok: &Upstream, status: u16, cause: &str) {
    let routes = [("/retry/", "retries = 2"), ("/once/", "retries = 0")];
    let toml = config(&[broken.addr(), ok.addr()], NO_OUTLIER, &routes);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    for _ in 0..20 {
        assert_ok_from(&get(&c, addr, "/retry/x", &[]).await, "ok");
    }
    let mut failed = 0;
    for _ in 0..20 {
        let r = get(&c, addr, "/once/x", &[]).await;
        if r.status == 200 {
            assert_ok_from(&r, "ok");
        } else {
            assert_local(&r, status, cause);
            failed += 1;
        }
    }
    // Sequential requests alternate between the two endpoints.
    assert!(
        (5..=15).contains(&failed),
        "about half fail without retries: {failed}"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_from_a_stopped_endpoint() {
    let dead = upstream("dead", Mode::Ok).await;
    let ok = upstream("ok", Mode::Ok).await;
    dead.stop().await;
    retries_hide(&dead, &ok, 503, "connect-failure").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_from_a_resetting_endpoint() {
    let resetting = upstream("resetting", Mode::Reset).await;
    let ok = upstream("ok", Mode::Ok).await;
    retries_hide(&resetting, &ok, 502, "upstream-reset").await;
    assert!(resetting.requests() >= 10, "the resets did happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_retried_after_a_reset_only_when_allowed() {
    let resetting = upstream("resetting", Mode::Reset).await;
    let ok = upstream("ok", Mode::Ok).await;
    let routes = [("/plain/", ""), ("/anyway/", "retry_non_idempotent = true")];
    let toml = config(&[resetting.addr(), ok.addr()], NO_OUTLIER, &routes);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();
    let post = |path: &'static str| {
        let c = c.clone();
        async move { send(&c, "POST", addr, path, &[], Bytes::from_static(b"pay 5")).await }
    };

    // Default: a POST that reached the resetting endpoint is not repeated.
    let (resets_before, ok_before) = (resetting.requests(), ok.requests());
    let (mut reset, mut passed) = (0, 0);
    for _ in 0..10 {
        let r = post("/plain/charge").await;
        if r.status == 200 {
            assert_ok_from(&r, "ok");
            passed += 1;
        } else {
            assert_local(&r, 502, "upstream-reset");
            reset += 1;
        }
    }
    assert!(
        reset >= 3,
        "round-robin sends some POSTs to the reset: {reset}"
    );
    assert_eq!(resetting.requests() - resets_before, reset, "one try each");
    assert_eq!(ok.requests() - ok_before, passed, "no POST was repeated");

    // The same route still retries idempotent methods.
    for _ in 0..6 {
        assert_ok_from(&get(&c, addr, "/plain/charge", &[]).await, "ok");
    }

    // Allowed: every POST ends on the healthy endpoint, body intact.
    let resets_before = resetting.requests();
    for _ in 0..10 {
        let r = post("/anyway/charge").await;
        assert_ok_from(&r, "ok");
        assert_eq!(r.header("x-seen-method"), Some("POST"));
        assert_eq!(r.header("x-seen-content-length"), Some("5"));
    }
    assert!(
        resetting.requests() - resets_before >= 3,
        "some POSTs were reset and retried"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries_under_a_full_outage() {
    let a = upstream("a", Mode::Status(503)).await;
    let b = upstream("b", Mode::Status(503)).await;
    let cluster = format!("{NO_OUTLIER}\nretry_budget = {{ percent = 20, min_per_second = 1 }}");
    let route = "retries = 3\nbackoff = \"1ms\"\nmax_backoff = \"5ms\"";
    let toml = config(&[a.addr(), b.addr()], &cluster, &[("/", route)]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    const REQUESTS: u64 = 200;
    let started = Instant::now();
    for _ in 0..REQUESTS / 10 {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let c: TestClient = c.clone();
            batch.spawn(async move { get(&c, addr, "/x", &[]).await });
        }
        while let Some(r) = batch.join_next().await {
            let r = r.unwrap();
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(r.header("x-upstream").is_some(), "the upstream's own 503");
            assert_eq!(r.header("x-attache-error"), None);
        }
    }
    // The budget's window is ten seconds: all of this must fit in it.
    assert!(started.elapsed() < Duration::from_secs(8));

    let upstream_total = a.requests() + b.requests();
    // 20 % of the requests plus min_per_second × the 10 s window, + slack.
    let cap = REQUESTS + REQUESTS * 20 / 100 + 10 + 5;
    assert!(
        upstream_total <= cap,
        "{upstream_total} tries > {cap}; unbudgeted would be {}",
        REQUESTS * 4
    );
    assert!(
        upstream_total >= REQUESTS + 10,
        "the budget still allows some retries: {upstream_total}"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_moves_a_slow_try_to_another_endpoint() {
    let slow = upstream("slow", Mode::Delay(Duration::from_secs(3))).await;
    let fast = upstream("fast", Mode::Ok).await;
    let route = "timeout = \"5s\"\nper_try_timeout = \"300ms\"\nmax_backoff = \"50ms\"";
    let toml = config(&[slow.addr(), fast.addr()], NO_OUTLIER, &[("/", route)]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    let mut slowest = Duration::ZERO;
    for _ in 0..4 {
        let t = Instant::now();
        let r = get(&c, addr, "/x", &[]).await;
        let took = t.elapsed();
        assert_ok_from(&r, "fast");
        assert!(took < Duration::from_millis(1000), "took {took:?}");
        slowest = slowest.max(took);
    }
    assert!(slow.requests() >= 1, "some first tries went to slow");
    assert!(
        slowest >= Duration::from_millis(280),
        "a try waited for the per-try timeout: {slowest:?}"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overall_timeout_answers_504_in_time() {
    let one = upstream("one", Mode::Delay(Duration::from_secs(3))).await;
    let two = upstream("two", Mode::Delay(Duration::from_secs(3))).await;
    let toml = config(
        &[one.addr(), two.addr()],
        NO_OUTLIER,
        &[("/", "timeout = \"500ms\"")],
    );
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    for _ in 0..2 {
        let t = Instant::now();
        let r = get(&c, addr, "/x", &[]).await;
        let took = t.elapsed();
        assert_local(&r, 504, "timeout");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1200),
            "answered after {took:?}"
        );
    }
    attache.shutdown().await;
}

/// Fires `n` concurrent GETs of `path`; each reply with its own latency.
async fn concurrent(
    c: &TestClient,
    addr: SocketAddr,
    path: &'static str,
    n: usize,
) -> Vec<(Reply, Duration)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = c.clone();
        set.spawn(async move {
            let t = Instant::now();
            let r = get(&c, addr, path, &[]).await;
            (r, t.elapsed())
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_rejects_over_max_requests_at_once() {
    let up = upstream("up", Mode::Ok).await;
    let cluster = "max_requests = 2\nmax_pending_requests = 0";
    let toml = config(&[up.addr()], cluster, &[("/", "")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    let replies = concurrent(&c, addr, "/sleep/500", 6).await;
    let (mut ok, mut overflow) = (0, 0);
    for (r, took) in &replies {
        if r.status == 200 {
            assert_ok_from(r, "up");
            assert!(*took >= Duration::from_millis(450), "slept: {took:?}");
            ok += 1;
        } else {
            assert_local(r, 503, "overflow");
            assert!(
                *took < Duration::from_millis(200),
                "rejected at once: {took:?}"
            );
            overflow += 1;
        }
    }
    assert!((1..=2).contains(&ok), "at most max_requests run: {ok}");
    assert!(overflow >= 4, "the rest overflow: {overflow}");
    assert_eq!(up.requests(), ok, "overflowing requests never reach it");

    // The slots are free again.
    assert_ok_from(&get(&c, addr, "/x", &[]).await, "up");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_queues_up_to_max_pending() {
    let up = upstream("up", Mode::Ok).await;
    let cluster = "max_requests = 1\nmax_pending_requests = 1";
    let toml = config(&[up.addr()], cluster, &[("/", "")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();

    let replies = concurrent(&c, addr, "/sleep/300", 3).await;
    let mut ok: Vec<Duration> = Vec::new();
    let mut overflow = 0;
    for (r, took) in &replies {
        if r.status == 200 {
            ok.push(*took);
        } else {
            assert_local(r, 503, "overflow");
            assert!(
                *took < Duration::from_millis(200),
                "rejected at once: {took:?}"
            );
            overflow += 1;
        }
    }
    ok.sort();
    assert_eq!(
        (ok.len(), overflow),
        (2, 1),
        "one runs, one waits, one overflows"
    );
    assert!(
        ok[1] >= Duration::from_millis(550),
        "the queued one ran after the first: {ok:?}"
    );
    attache.shutdown().await;
}

/// A request queued for a cluster slot waits no longer than its route's
/// timeout: with the only slot held by a slow request of another route,
/// it gets 504 when its own 500 ms are up, never reaches the upstream,
/// and the endpoint is not blamed (the next request is served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_queued_for_a_slot_times_out_with_its_route() {
    let up = upstream("up", Mode::Ok).await;
    let cluster = "max_requests = 1\nmax_pending_requests = 4\noutlier = { consecutive_5xx = 1 }";
    let routes = [
        ("/slow/", "timeout = \"10s\"\nrewrite = \"/\""),
        ("/", "timeout = \"500ms\""),
    ];
    let toml = config(&[up.addr()], cluster, &routes);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { get(&c, addr, "/slow/sleep/2500", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/x", "/sleep/0"] {
        let t = Instant::now();
        let r = get(&c, addr, path, &[]).await;
        let took = t.elapsed();
        assert_local(&r, 504, "timeout");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(1200),
            "{path}: answered after {took:?}"
        );
    }
    assert_ok_from(&slow.await.unwrap(), "up");
    assert_eq!(up.requests(), 1, "the queued requests never went out");
    assert_ok_from(&get(&c, addr, "/x", &[]).await, "up");
    attache.shutdown().await;
}

/// Sends `n` GETs; true when `watched` received none of them.
async fn skipped(c: &TestClient, addr: SocketAddr, watched: &Upstream, n: usize) -> bool {
    let before = watched.requests();
    for _ in 0..n {
        let r = get(c, addr, "/x", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    watched.requests() == before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_endpoints_out_and_back() {
    let a = upstream("a", Mode::Ok).await;
    let b = upstream("b", Mode::Ok).await;
    let cluster = format!(
        "{NO_OUTLIER}\nhealth_check = {{ path = \"/healthz\", interval = \"200ms\", unhealthy_threshold = 2, healthy_threshold = 1 }}"
    );
    let toml = config(&[a.addr(), b.addr()], &cluster, &[("/", "retries = 0")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();
    assert!(!skipped(&c, addr, &b, 4).await, "b starts in rotation");

    b.set_healthy(false);
    let t = Instant::now();
    let out = eventually(Duration::from_secs(3), || skipped(&c, addr, &b, 4)).await;
    assert!(out, "b failing /healthz leaves the rotation");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let before = b.requests();
    for _ in 0..20 {
        assert_ok_from(&get(&c, addr, "/x", &[]).await, "a");
    }
    assert_eq!(b.requests(), before);
    assert!(b.health_checks() >= 2, "b is still being checked");

    b.set_healthy(true);
    let back = eventually(Duration::from_secs(3), || async {
        !skipped(&c, addr, &b, 4).await
    })
    .await;
    assert!(back, "one passing check brings b back");

    a.set_healthy(false);
    b.set_healthy(false);
    let none = eventually(Duration::from_secs(3), || async {
        get(&c, addr, "/x", &[]).await.status == 503
    })
    .await;
    assert!(none, "no healthy endpoint left");
    let before = a.requests() + b.requests();
    let r = get(&c, addr, "/x", &[]).await;
    assert_local(&r, 503, "unhealthy");
    assert_eq!(a.requests() + b.requests(), before, "nothing was sent");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_never_lands_on_a_connection_the_upstream_just_closed() {
    use std::sync::atomic::Ordering;
    let (up, accepted) = one_answer_per_connection().await;
    let toml = config(&[up], NO_OUTLIER, &[("/", "")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();
    for round in 0..3 {
        // A GET leaves its connection idle in the pool; the upstream then
        // closes it. Well under a second later, a POST, which may not be
        // repeated, must not be sent on it.
        let r = get(&c, addr, "/a", &[]).await;
        assert_eq!(r.status, 200, "round {round}: {:?} {}", r.headers, r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = send(&c, "POST", addr, "/pay", &[], Bytes::from_static(b"pay 5")).await;
        assert_eq!(r.status, 200, "round {round}: {:?} {}", r.headers, r.body);
        assert_eq!(r.body, "ok");
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        6,
        "one connection per request: none was reused after its close"
    );
    attache.shutdown().await;
}

/// A GET found a pooled connection the upstream had closed: the first
/// replay on a new one is free (an upstream closing an idle keep-alive
/// connection is ordinary), even with a budget that allows no retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_stale_connection_replay_is_free() {
    use std::sync::atomic::Ordering;
    let (up, accepted) = one_answer_per_connection().await;
    let cluster = format!("{NO_OUTLIER}\nretry_budget = {{ percent = 0, min_per_second = 0 }}");
    let toml = config(&[up], &cluster, &[("/", "retries = 0")]);
    let (attache, addr) = attache_addr(&toml).await;
    let c = h1_client();
    let r = get(&c, addr, "/a", &[]).await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body);
    // The upstream closes that connection; the next GET takes it from the
    // pool and finds it closed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = get(&c, addr, "/b", &[]).await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body);
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        2,
        "one replay, on a new connection"
    );
    attache.shutdown().await;
}

/// A second stale connection in a row is a retry: the retry budget
/// decides (here it allows none, and the GET is answered 502 rather than
/// sent a third time), and the endpoint is not blamed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn further_stale_connection_replays_are_within_the_retry_budget() {
    use std::sync::atomic::Ordering;
    let (up, accepted) = one_answer_per_connection_after(Duration::from_millis(100)).await;
    let cluster = "retry_budget = { percent = 0, min_per_second = 0 }\noutlier = { consecutive_connect_failures = 1, base_ejection = \"10s\" }";
    let toml = config(&[up], cluster, &[("/", "retries = 0")]);
    let (attache, addr) = attache_addr(&toml).await;
    // Two requests at once: two pooled connections, both then closed.
    let (c1, c2) = (h1_client(), h1_client());
    let (r1, r2) = tokio::join!(get(&c1, addr, "/a", &[]), get(&c2, addr, "/b", &[]));
    assert_eq!((r1.status.as_u16(), r2.status.as_u16()), (200, 200));
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = get(&c1, addr, "/c", &[]).await;
    assert_local(&r, 502, "upstream-reset");
    assert_eq!(accepted.load(Ordering::Relaxed), 2, "no third send");
    // Not the endpoint's fault: it is still there for the next request.
    let r = get(&c1, addr, "/d", &[]).await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.body);
    attache.shutdown().await;
}
