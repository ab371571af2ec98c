//! Tests for config units (durations, sizes) as written in `attache.toml`.

use std::time::Duration;

use super::{ByteSize, Dur};

#[derive(serde::Deserialize, serde::Serialize, Debug)]
struct Holder {
    d: Option<Dur>,
    b: Option<ByteSize>,
}

fn dur(s: &str) -> Result<Duration, String> {
    s.parse::<Dur>().map(|d| d.0).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>()
        .map(|b| b.0)
        .map_err(|e| e.to_string())
}

#[test]
fn duration_table() {
    let ok: &[(&str, Duration)] = &[
        ("250ms", Duration::from_millis(250)),
        ("5s", Duration::from_secs(5)),
        ("10m", Duration::from_secs(600)),
        ("1h", Duration::from_secs(3600)),
        ("1d", Duration::from_secs(86_400)),
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        (" 5 s ", Duration::from_secs(5)),
        ("1500ms", Duration::from_millis(1500)),
    ];
    for (input, want) in ok {
        assert_eq!(dur(input).as_ref(), Ok(want), "{input}");
    }
}

#[test]
fn duration_errors_are_clear() {
    assert_eq!(
        dur("5 parsecs").unwrap_err(),
        "expected a duration like \"5s\" or \"250ms\", got \"5 parsecs\""
    );
    assert!(dur("5").unwrap_err().contains("needs a unit"));
    assert!(dur("").is_err());
    assert!(dur("s").is_err());
    assert!(dur("-5s").is_err());
    assert!(dur("1.5s").is_err());
    assert!(dur("5S").is_err());
    assert!(dur("99999999999999999999d").is_err());
}

#[test]
fn duration_displays_shortest_exact_form() {
    let cases: &[(Duration, &str)] = &[
        (Duration::ZERO, "0"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_secs(5), "5s"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(120), "2m"),
        (Duration::from_secs(7200), "2h"),
        (Duration::from_secs(172_800), "2d"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_micros(3), "3us"),
    ];
    for (d, want) in cases {
        let shown = Dur(*d).to_string();
        assert_eq!(&shown, want);
        assert_eq!(dur(&shown), Ok(*d), "round trip of {shown}");
    }
}

#[test]
fn size_table() {
    let ok: &[(&str, u64)] = &[
        ("256MiB", 256 << 20),
        ("64KiB", 64 << 10),
        ("1GiB", 1 << 30),
        ("512KB", 512_000),
        ("100B", 100),
        ("4096", 4096),
        ("1kib", 1024),
        ("2 MB", 2_000_000),
    ];
    for (input, want) in ok {
        assert_eq!(size(input), Ok(*want), "{input}");
    }
    assert_eq!(
        size("5 parsecs").unwrap_err(),
        "expected a size like \"256MiB\", \"64KiB\" or a number of bytes, got \"5 parsecs\""
    );
    assert!(size("1.5GiB").is_err());
    assert!(size("99999999TiB").unwrap_err().contains("too large"));
}

#[test]
fn size_displays_shortest_exact_form() {
    let cases: &[(u64, &str)] = &[
        (0, "0B"),
        (100, "100B"),
        (1024, "1KiB"),
        (1000, "1KB"),
        (256 << 20, "256MiB"),
        (1 << 30, "1GiB"),
        (1025, "1025B"),
    ];
    for (n, want) in cases {
        let shown = ByteSize(*n).to_string();
        assert_eq!(&shown, want);
        assert_eq!(size(&shown), Ok(*n), "round trip of {shown}");
    }
}

#[test]
fn toml_accepts_strings_and_bare_integers() {
    let h: Holder = toml::from_str("d = 0\nb = 2048").unwrap();
    assert_eq!(h.d, Some(Dur(Duration::ZERO)));
    assert_eq!(h.b, Some(ByteSize(2048)));
    let h: Holder = toml::from_str("d = \"0\"\nb = \"1MiB\"").unwrap();
    assert_eq!(h.d, Some(Dur(Duration::ZERO)));
    assert_eq!(h.b, Some(ByteSize(1 << 20)));

    let err = toml::from_str::<Holder>("d = 5").unwrap_err().to_string();
    assert!(err.contains("needs a unit"), "{err}");
    let err = toml::from_str::<Holder>("d = \"5 parsecs\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("got \"5 parsecs\""), "{err}");
    let err = toml::from_str::<Holder>("b = -1").unwrap_err().to_string();
    assert!(err.contains("expected a size"), "{err}");
}

#[test]
fn toml_serializes_as_strings() {
    let h = Holder {
        d: Some(Dur(Duration::from_millis(250))),
        b: Some(ByteSize(64 << 10)),
    };
    let text = toml::to_string(&h).unwrap();
    assert_eq!(text, "d = \"250ms\"\nb = \"64KiB\"\n");
}

#[test]
fn non_zero_maps_zero_to_none() {
    assert_eq!(Dur(Duration::ZERO).non_zero(), None);
    assert_eq!(
        Dur(Duration::from_secs(1)).non_zero(),
        Some(Duration::from_secs(1))
    );
}
