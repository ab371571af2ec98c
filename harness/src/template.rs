//! The initdb template behind every test *backend* of accept → parse → route → backend →
//! respond: `initdb` costs about a second, a `cp -a` of its result a tenth of that, so each
//! process runs initdb once and every server starts from a copy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::exec::{env, run, PgEnv};
use crate::watchdog::Watchdog;
use crate::{HarnessError, SUPERUSER};

/// Name of the per-server config file that the template's postgresql.conf includes.
pub(crate) const CONF_FILE: &str = "attache.conf";

#[derive(Debug)]
struct Template {
    data: PathBuf,
    /// Removes the template directory when the process exits (statics are never dropped).
    _watchdog: Watchdog,
}

static TEMPLATE: OnceLock<Result<Template, String>> = OnceLock::new();

/// The template data directory, created on first use; later calls reuse it.
pub(crate) fn template_data() -> Result<&'static Path, HarnessError> {
    let env = env()?;
    TEMPLATE
        .get_or_init(|| build(env).map_err(|e| e.to_string()))
        .as_ref()
        .map(|t| t.data.as_path())
        .map_err(|e| HarnessError::Setup(format!("creating the initdb template: {e}")))
}

fn build(env: &PgEnv) -> Result<Template, HarnessError> {
    let dir = tempfile::Builder::new()
        .prefix("attache-pg-template-")
        .tempdir()
        .map_err(|e| HarnessError::io("creating the template temp dir", e))?;
    // From here on the watchdog owns removal: on failure it is dropped, which closes its pipe
    // and makes it delete the directory; on success it does so when the process exits.
    let watchdog = Watchdog::spawn(env, dir.path(), None)?;
    let root = dir.keep();
    env.give(&root)?;
    let data = root.join("data");
    run(env
        .server_cmd("initdb")
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "--auth-local=trust", "-U", SUPERUSER])
        .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
        // 1 MB WAL segments instead of 16 MB make every copy of the template smaller.
        .arg("--wal-segsize=1"))?;
    let conf = data.join("postgresql.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| HarnessError::io(format!("opening {}", conf.display()), e))?;
    writeln!(
        file,
        "\n# Attaché test harness: per-server settings\ninclude_if_exists = '{CONF_FILE}'"
    )
    .map_err(|e| HarnessError::io(format!("appending to {}", conf.display()), e))?;
    Ok(Template {
        data,
        _watchdog: watchdog,
    })
}
