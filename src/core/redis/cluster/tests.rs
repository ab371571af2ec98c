//! Unit tests for the cluster view: reading redirects and `CLUSTER NODES`.

use super::*;

#[test]
fn redirects_are_read_from_error_replies_only() {
    let moved = redirect(b"-MOVED 3999 127.0.0.1:7001\r\n");
    assert!(matches!(moved, Some(Redirect::Moved(a)) if a == "127.0.0.1:7001"));
    let ask = redirect(b"-ASK 3999 127.0.0.1:7002\r\n");
    assert!(matches!(ask, Some(Redirect::Ask(a)) if a == "127.0.0.1:7002"));
    assert!(matches!(
        redirect(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
        Some(Redirect::TryAgain)
    ));
    assert!(redirect(b"+MOVED 1 x:1\r\n").is_none());
    assert!(redirect(b"$5\r\nMOVED\r\n").is_none());
}

#[test]
fn cluster_nodes_lists_joined_nodes_with_slots_or_not() {
    let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
6ec23923021cf3ffec47632106199cb7f496ce01 :30005@31005 master - 0 1426238316232 5 connected
aaaa23923021cf3ffec47632106199cb7f496ce0 127.0.0.1:30006@31006 handshake - 0 0 0 connected
";
    let got = parse_nodes(text, "10.0.0.9");
    let want: HashSet<String> = [
        "127.0.0.1:30004",
        "127.0.0.1:30002",
        "127.0.0.1:30001",
        "10.0.0.9:30005",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
}
