use super::*;

#[test]
fn yaml_has_one_pool_with_weighted_named_servers() {
    let servers = [
        PoolServer {
            port: 7001,
            weight: 1,
            name: "a",
        },
        PoolServer {
            port: 7002,
            weight: 3,
            name: "b",
        },
    ];
    let yaml = render_yaml(22121, "fnv1a_64", "ketama", None, &servers);
    let expected = "attache:\n  listen: 127.0.0.1:22121\n  hash: fnv1a_64\n  hash_tag: \"{}\"\n  \
                    distribution: ketama\n  auto_eject_hosts: false\n  redis: true\n  \
                    timeout: 2000\n  servers:\n    - 127.0.0.1:7001:1 a\n    - 127.0.0.1:7002:3 b\n";
    assert_eq!(yaml, expected);
}

#[test]
fn yaml_quotes_the_pool_password() {
    let servers = [PoolServer {
        port: 1,
        weight: 1,
        name: "s",
    }];
    let yaml = render_yaml(2, "murmur", "modula", Some("p\"w"), &servers);
    assert!(yaml.contains("  redis_auth: \"p\\\"w\"\n"), "{yaml}");
}
