use std::net::{IpAddr, Ipv4Addr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    m
}

#[test]
fn hop_by_hop_headers_are_dropped() {
    let mut h = map(&[
        ("connection", "keep-alive, x-secret-hop"),
        ("keep-alive", "timeout=5"),
        ("x-secret-hop", "1"),
        ("transfer-encoding", "chunked"),
        ("te", "gzip"),
        ("upgrade", "websocket"),
        ("x-app", "kept"),
    ]);
    strip_hop_by_hop(&mut h, false);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-app"]);

    let mut h = map(&[("te", "trailers"), ("connection", "close")]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.get("te").unwrap(), "trailers");
    assert!(h.get("connection").is_none());
}

#[test]
fn an_upgrade_keeps_its_upgrade_headers() {
    let mut h = map(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("keep-alive", "1"),
    ]);
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.get("upgrade").unwrap(), "websocket");
    assert_eq!(h.get("connection").unwrap(), "upgrade");
    assert!(h.get("keep-alive").is_none());
}

#[test]
fn forwarded_headers_append_and_keep() {
    let peer = peer_value(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
    let host = HeaderValue::from_static("localhost:15000");
    let mut h = HeaderMap::new();
    add_forwarded(&mut h, &peer, Some(&host));
    assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.9");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(h.get("x-forwarded-host").unwrap(), "localhost:15000");

    let mut h = map(&[
        ("x-forwarded-for", "10.1.1.1"),
        ("x-forwarded-proto", "https"),
    ]);
    add_forwarded(&mut h, &peer, None);
    assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.1.1, 127.0.0.9");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    assert!(h.get("x-forwarded-host").is_none());
}

#[test]
fn request_ids_are_kept_or_made() {
    let name = HeaderName::from_static("x-request-id");
    let mut h = map(&[("x-request-id", "abc")]);
    assert_eq!(request_id(&mut h, &name), "abc");
    let mut h = HeaderMap::new();
    let a = request_id(&mut h, &name);
    assert_eq!(h.get(&name).unwrap(), &a);
    let b = request_id(&mut HeaderMap::new(), &name);
    assert_ne!(a, b);
    let s = a.to_str().unwrap();
    assert_eq!(s.len(), 36);
    assert_eq!(&s[14..15], "4", "version 4 shape: {s}");
    for (i, c) in s.chars().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            assert_eq!(c, '-', "{s}");
        } else {
            assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{s}");
        }
    }
}

#[test]
fn traceparent_validation() {
    let cases = [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            true,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            false,
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            false,
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            true,
        ),
        ("garbage", false),
    ];
    for (v, want) in cases {
        assert_eq!(valid_traceparent(v), want, "{v}");
    }
}

#[test]
fn traceparent_is_kept_or_started() {
    let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut h = map(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )]);
    ensure_traceparent(&mut h);
    assert_eq!(h.get("traceparent").unwrap(), kept);

    for mut h in [HeaderMap::new(), map(&[("traceparent", "bogus")])] {
        ensure_traceparent(&mut h);
        let v = h.get("traceparent").unwrap().to_str().unwrap();
        assert!(valid_traceparent(v), "{v}");
        assert!(v.ends_with("-01"));
    }
}

#[test]
fn transfer_codings_are_those_besides_a_final_chunked() {
    let value = |v: Option<HeaderValue>| v.map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(transfer_codings(&map(&[])), Ok(None));
    let chunked = map(&[("transfer-encoding", "chunked")]);
    assert_eq!(transfer_codings(&chunked), Ok(None));
    for (fields, want) in [
        (&[("transfer-encoding", "gzip, chunked")][..], "gzip"),
        (&[("transfer-encoding", "gzip")][..], "gzip"),
        (
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "br,chunked"),
            ][..],
            "gzip, br",
        ),
    ] {
        let got = transfer_codings(&map(fields)).map(value);
        assert_eq!(got, Ok(Some(want.to_owned())), "{fields:?}");
    }
    let late = map(&[("transfer-encoding", "chunked, gzip")]);
    assert_eq!(transfer_codings(&late), Err("chunked, gzip".to_owned()));
}

#[test]
fn split_cookie_fields_are_joined_into_one() {
    let mut h = map(&[("cookie", "a=1"), ("x", "y"), ("cookie", "b=2; c=3")]);
    join_cookies(&mut h);
    let all: Vec<_> = h.get_all("cookie").iter().collect();
    assert_eq!(all, ["a=1; b=2; c=3"]);
    assert_eq!(h.get("x").unwrap(), "y");
    let mut one = map(&[("cookie", "a=1")]);
    join_cookies(&mut one);
    assert_eq!(one, map(&[("cookie", "a=1")]));
}

#[test]
fn a_request_is_framed_by_chunked_alone() {
    fn framing(fields: &[(&'static str, &'static str)]) -> Result<(), LocalError> {
        request_framing(&map(fields))
    }
    assert_eq!(framing(&[]), Ok(()));
    assert_eq!(framing(&[("transfer-encoding", "Chunked")]), Ok(()));
    for fields in [
        &[("transfer-encoding", "gzip, chunked")][..],
        &[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
        ][..],
    ] {
        let want = LocalError::RequestTransferCoding("gzip, chunked".into());
        assert_eq!(framing(fields), Err(want), "{fields:?}");
    }
    for fields in [
        &[("transfer-encoding", "chunked, chunked")][..],
        &[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
        ][..],
        &[("transfer-encoding", "chunked, gzip")][..],
        &[("transfer-encoding", ",")][..],
    ] {
        let got = framing(fields);
        assert!(
            matches!(got, Err(LocalError::BadRequest(_))),
            "{fields:?}: {got:?}"
        );
    }
}
