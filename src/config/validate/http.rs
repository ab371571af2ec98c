//! Config → semantic checks of `[http]`: addresses that parse, routes that
//! name a cluster that exists, and limits and timeouts that can work.

use std::net::SocketAddr;

use super::{check_file, key, Errors};
use crate::config::http::{ClusterConfig, EndpointSpec, HttpConfig, RouteConfig};

pub(super) fn check_http(h: &HttpConfig, errs: &mut Errors) {
    if h.listen.parse::<SocketAddr>().is_err() {
        errs.push(
            "http.listen",
            format!("invalid socket address {:?}", h.listen),
        );
    }
    if h.max_client_connections < 1 {
        errs.push("http.max_client_connections", "must be at least 1");
    }
    if http::HeaderName::from_bytes(h.request_id_header.as_bytes()).is_err() {
        errs.push(
            "http.request_id_header",
            format!("{:?} is not a valid header name", h.request_id_header),
        );
    }
    // Zero would cut every body and every response that is not ready at
    // once; a user who wants no limit writes a long one.
    if h.stream_idle_timeout.0.is_zero() {
        errs.push("http.stream_idle_timeout", "must be more than 0");
    }
    if h.request_body_timeout.is_some_and(|d| d.0.is_zero()) {
        errs.push(
            "http.request_body_timeout",
            "must be more than 0 (unset: no limit)",
        );
    }
    if h.clusters.is_empty() {
        errs.push("http.clusters", "at least one cluster is required");
    }
    for (i, r) in h.routes.iter().enumerate() {
        check_route(h, r, &format!("http.routes[{i}]"), errs);
    }
    for (name, c) in &h.clusters {
        check_cluster(c, &format!("http.clusters.{}", key(name)), errs);
    }
}

fn check_route(h: &HttpConfig, r: &RouteConfig, path: &str, errs: &mut Errors) {
    if !h.clusters.contains_key(&r.cluster) {
        errs.push(
            format!("{path}.cluster"),
            format!("no cluster named {:?} in [http.clusters]", r.cluster),
        );
    }
    if !r.prefix.starts_with('/') {
        errs.push(format!("{path}.prefix"), "must start with /");
    }
    if let Some(rw) = &r.rewrite {
        if !rw.starts_with('/') {
            errs.push(format!("{path}.rewrite"), "must start with /");
        }
    }
    if let Some(host) = &r.host {
        if host.is_empty() || host.contains(['/', ' ']) {
            errs.push(format!("{path}.host"), format!("invalid host {host:?}"));
        }
    }
    if r.timeout.0.is_zero() {
        errs.push(format!("{path}.timeout"), "must be more than 0");
    }
    if let Some(t) = &r.per_try_timeout {
        if t.0.is_zero() || t.0 > r.timeout.0 {
            errs.push(
                format!("{path}.per_try_timeout"),
                "must be more than 0 and at most timeout",
            );
        }
    }
    if r.retries > 10 {
        errs.push(format!("{path}.retries"), "must be at most 10");
    }
    if r.max_backoff.0 < r.backoff.0 {
        errs.push(format!("{path}.max_backoff"), "must be at least backoff");
    }
}

fn check_cluster(c: &ClusterConfig, path: &str, errs: &mut Errors) {
    if c.endpoints.is_empty() {
        errs.push(
            format!("{path}.endpoints"),
            "at least one endpoint is required",
        );
    }
    for (i, e) in c.endpoints.iter().enumerate() {
        if let Err(message) = EndpointSpec::parse(e) {
            errs.push(format!("{path}.endpoints[{i}]"), message);
        }
    }
    if let Some(tls) = &c.tls {
        for (name, file) in [
            ("ca_file", &tls.ca_file),
            ("client_cert", &tls.client_cert),
            ("client_key", &tls.client_key),
        ] {
            if let Some(f) = file {
                check_file(f, &format!("{path}.tls.{name}"), errs);
            }
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            errs.push(
                format!("{path}.tls"),
                "client_cert and client_key go together",
            );
        }
    }
    if let Some(h) = &c.host_header {
        if http::HeaderValue::from_str(h).is_err() || h.is_empty() {
            errs.push(format!("{path}.host_header"), format!("invalid host {h:?}"));
        }
    }
    for (name, v) in [
        ("max_connections", c.max_connections),
        ("max_requests", c.max_requests),
    ] {
        if v < 1 {
            errs.push(format!("{path}.{name}"), "must be at least 1");
        }
    }
    if c.connect_timeout.0.is_zero() {
        errs.push(format!("{path}.connect_timeout"), "must be more than 0");
    }
    if c.dns_refresh.0 < std::time::Duration::from_millis(100) {
        errs.push(format!("{path}.dns_refresh"), "must be at least 100ms");
    }
    if c.outlier.max_ejection_percent > 100 {
        errs.push(
            format!("{path}.outlier.max_ejection_percent"),
            "must be 0..=100",
        );
    }
    if c.outlier.max_ejection.0 < c.outlier.base_ejection.0 {
        errs.push(
            format!("{path}.outlier.max_ejection"),
            "must be at least base_ejection",
        );
    }
    if let Some(hc) = &c.health_check {
        if !hc.path.starts_with('/') {
            errs.push(format!("{path}.health_check.path"), "must start with /");
        }
        if hc.interval.0.is_zero() || hc.timeout.0.is_zero() {
            errs.push(
                format!("{path}.health_check"),
                "interval and timeout must be more than 0",
            );
        }
        if hc.healthy_threshold < 1 || hc.unhealthy_threshold < 1 {
            errs.push(
                format!("{path}.health_check"),
                "thresholds must be at least 1",
            );
        }
    }
    let b = &c.retry_budget;
    if !(0.0..=100.0).contains(&b.percent) {
        errs.push(format!("{path}.retry_budget.percent"), "must be 0..=100");
    }
}
