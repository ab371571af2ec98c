use std::path::Path;

use super::*;

#[test]
fn format_from_extension_then_contents() {
    let p = |s: &str| Path::new(s).to_path_buf();
    assert_eq!(Format::detect(&p("a.ini"), ""), Some(Format::Pgbouncer));
    assert_eq!(Format::detect(&p("a.yml"), ""), Some(Format::Nutcracker));
    assert_eq!(Format::detect(&p("a.yaml"), ""), Some(Format::Nutcracker));
    assert_eq!(
        Format::detect(&p("pgbouncer.conf"), ";x\n [Databases]\na = host=b\n"),
        Some(Format::Pgbouncer)
    );
    assert_eq!(
        Format::detect(&p("conf"), "pool:\n  servers:\n   - a:1:1\n"),
        Some(Format::Nutcracker)
    );
    assert_eq!(Format::detect(&p("conf"), "[general]\n"), None);
    assert_eq!("TwemProxy".parse::<Format>(), Ok(Format::Nutcracker));
    assert_eq!("pgbouncer".parse::<Format>(), Ok(Format::Pgbouncer));
    assert!("haproxy".parse::<Format>().is_err());
}

#[test]
fn secrets_are_redacted_in_reports() {
    let u = Unmapped::new("databases.app.password", "hunter2", "why");
    assert_eq!(u.to_string(), "databases.app.password = <redacted> (why)");
    let u = Unmapped::new("pool.redis_auth", "hunter2", "why");
    assert_eq!(u.value, "<redacted>");
    let u = Unmapped::new("pgbouncer.logfile", "/var/log/x", "why");
    assert_eq!(u.value, "/var/log/x");
    assert_eq!(Unmapped::redacted("auth_file.x", "r").value, "<redacted>");
}

#[test]
fn debug_of_an_import_leaves_the_toml_out() {
    let yml = "p:\n  redis: true\n  redis_auth: hunter2\n  servers:\n    - 10.0.0.1:6379:1\n";
    let imported = nutcracker::import(yml, "n.yml").unwrap();
    assert!(imported.toml.contains("hunter2"));
    assert!(!format!("{imported:?}").contains("hunter2"));
}

#[test]
fn unknown_format_and_unreadable_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("conf");
    std::fs::write(&f, "[general]\n").unwrap();
    assert!(matches!(
        import_file(&f, None),
        Err(ImportError::UnknownFormat { .. })
    ));
    assert!(matches!(
        import_file(&dir.path().join("nope.ini"), None),
        Err(ImportError::Read { .. })
    ));
    // --format overrides the extension.
    let g = dir.path().join("twemproxy.conf.ini");
    std::fs::write(&g, "p:\n  redis: true\n  servers:\n    - 10.0.0.1:6379:1\n").unwrap();
    let imported = import_file(&g, Some(Format::Nutcracker)).unwrap();
    assert_eq!(imported.format, Format::Nutcracker);
}

#[test]
fn output_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("attache.toml");
    std::fs::write(&f, "old content that is longer").unwrap();
    write_output(&f, "new").unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let created = dir.path().join("fresh.toml");
        write_output(&created, "x").unwrap();
        let mode = std::fs::metadata(&created).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_loader_judges_the_output() {
    let mut doc = Doc::default();
    let mut pg = render::Table::new(&["postgres"]);
    pg.set("listen", render::Value::str("not an address"));
    doc.push(pg);
    let e = finish(Format::Pgbouncer, "x.ini", &doc, Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the imported config does not load: postgres.listen: invalid socket address \"not an address\""
    );
    let mut doc = Doc::default();
    let mut pg = render::Table::new(&["postgres"]);
    pg.set("pool_sise", render::Value::Int(3));
    doc.push(pg);
    let e = finish(Format::Pgbouncer, "x.ini", &doc, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("TOML error at line"), "{e}");
}
