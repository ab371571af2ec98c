use super::*;

#[test]
fn plain_numbers_are_seconds() {
    assert_eq!(seconds("30").unwrap().to_string(), "30s");
    assert_eq!(seconds("600").unwrap().to_string(), "10m");
    assert_eq!(seconds(" 3600 ").unwrap().to_string(), "1h");
    assert_eq!(seconds("0").unwrap().to_string(), "0");
}

#[test]
fn fractional_seconds_and_units() {
    assert_eq!(seconds("0.5").unwrap().to_string(), "500ms");
    assert_eq!(seconds("1.25").unwrap().to_string(), "1250ms");
    assert_eq!(seconds("250ms").unwrap().to_string(), "250ms");
    assert_eq!(seconds("5min").unwrap().to_string(), "5m");
    assert_eq!(seconds("2h").unwrap().to_string(), "2h");
    assert_eq!(seconds("1d").unwrap().to_string(), "1d");
}

#[test]
fn bad_seconds_are_refused() {
    for bad in ["", "abc", "5 fortnights", "-1", "1e400"] {
        assert!(seconds(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn millis_are_whole_milliseconds() {
    assert_eq!(millis("400").unwrap().to_string(), "400ms");
    assert_eq!(millis("30000").unwrap().to_string(), "30s");
    assert!(millis("1.5").is_err());
    assert!(millis("x").is_err());
}

#[test]
fn sizes_in_bytes_or_units() {
    assert_eq!(bytes("2147483647").unwrap().0, 2_147_483_647);
    assert_eq!(bytes("268435456").unwrap().to_string(), "256MiB");
    assert_eq!(bytes("64kB").unwrap().0, 64 << 10);
    assert_eq!(bytes("16MB").unwrap().0, 16 << 20);
    assert_eq!(bytes("1GB").unwrap().0, 1 << 30);
    assert!(bytes("12 parsecs").is_err());
    assert!(bytes("99999999999999999999").is_err());
    assert!(bytes("18446744073709551615GB").is_err());
}

#[test]
fn counts() {
    assert_eq!(count(" 40 ").unwrap(), 40);
    assert!(count("-1").is_err());
    assert!(count("4.5").is_err());
}
