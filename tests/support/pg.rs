//! A source and a destination cluster per test, plus small SQL helpers.
//!
//! Which server builds run is chosen per side by the environment, so that
//! the whole suite runs against a version pair (`docs/testing.md`):
//! `PGSYNC_TEST_SOURCE_BINDIR` and `PGSYNC_TEST_DESTINATION_BINDIR` name a
//! directory with `initdb`, `pg_ctl` and `postgres`; unset (or empty), a side
//! runs the default installation (`pgsync::cluster::bindir`).

use std::path::PathBuf;

use pgsync::cluster::{ClusterError, LocalCluster};
use tokio_postgres::{Client, NoTls};

/// The environment variable choosing the source's server binaries.
pub const SOURCE_BINDIR_VAR: &str = "PGSYNC_TEST_SOURCE_BINDIR";
/// The environment variable choosing the destination's server binaries.
pub const DESTINATION_BINDIR_VAR: &str = "PGSYNC_TEST_DESTINATION_BINDIR";

/// The server binaries for one side: `$var` when set and not empty, else
/// the default installation.
pub fn side_bindir(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => pgsync::cluster::bindir()
            .expect("no PostgreSQL server binaries found (install Debian's postgresql)"),
    }
}

fn start_side(var: &str, settings: &[&str], what: &str) -> LocalCluster {
    let bindir = side_bindir(var);
    let cluster = LocalCluster::start_in(&bindir, settings).unwrap_or_else(|e: ClusterError| {
        panic!(
            "start {what} cluster from {} (${var}): {e}",
            bindir.display()
        )
    });
    static ANNOUNCED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(SOURCE_BINDIR_VAR).is_some()
        || std::env::var_os(DESTINATION_BINDIR_VAR).is_some()
    {
        ANNOUNCED.call_once(|| {
            eprintln!(
                "clusters: source from {} (${SOURCE_BINDIR_VAR}), destination from {} (${DESTINATION_BINDIR_VAR})",
                side_bindir(SOURCE_BINDIR_VAR).display(),
                side_bindir(DESTINATION_BINDIR_VAR).display()
            );
        });
    }
    cluster
}

/// The major version of the server programs in `bindir`, from
/// `postgres --version` ("postgres (PostgreSQL) 13.23", "… 15.14 (Debian …)").
pub fn bindir_major(bindir: &std::path::Path) -> u32 {
    let out = std::process::Command::new(bindir.join("postgres"))
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}/postgres --version: {e}", bindir.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read a version from {text:?}"))
}

/// The major versions `(source, destination)` that [`Pair::start`],
/// [`start_source`] and [`start_destination`] run.
pub fn pair_majors() -> (u32, u32) {
    static MAJORS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *MAJORS.get_or_init(|| {
        (
            bindir_major(&side_bindir(SOURCE_BINDIR_VAR)),
            bindir_major(&side_bindir(DESTINATION_BINDIR_VAR)),
        )
    })
}

/// A source cluster (`$PGSYNC_TEST_SOURCE_BINDIR`) with these extra
/// `postgresql.conf` lines.
pub fn start_source(settings: &[&str]) -> LocalCluster {
    start_side(SOURCE_BINDIR_VAR, settings, "source")
}

/// A destination cluster (`$PGSYNC_TEST_DESTINATION_BINDIR`) with these
/// extra `postgresql.conf` lines.
pub fn start_destination(settings: &[&str]) -> LocalCluster {
    start_side(DESTINATION_BINDIR_VAR, settings, "destination")
}

/// Two throwaway clusters, as in a real deployment.
pub struct Pair {
    pub source: LocalCluster,
    pub destination: LocalCluster,
}

impl Pair {
    /// Starts both clusters (each side's binaries chosen by the environment,
    /// see the module documentation) and creates database `app` on each.
    pub fn start() -> Pair {
        Pair::start_with(&[], &[])
    }

    /// Like [`Pair::start`], with extra `postgresql.conf` lines per side.
    pub fn start_with(source_settings: &[&str], destination_settings: &[&str]) -> Pair {
        let (source, destination) = std::thread::scope(|s| {
            let src = s.spawn(|| start_source(source_settings));
            let dst = s.spawn(|| start_destination(destination_settings));
            (
                src.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                dst.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        });
        Pair::with_app_database(source, destination)
    }

    /// Two clusters started by the caller, with database `app` created on each.
    pub fn with_app_database(source: LocalCluster, destination: LocalCluster) -> Pair {
        source
            .psql("postgres", &["-c", "create database app"])
            .expect("create source db");
        destination
            .psql("postgres", &["-c", "create database app"])
            .expect("create dst db");
        Pair {
            source,
            destination,
        }
    }
}

/// Connects to `database` on `cluster`, driving the connection in the background.
pub async fn connect(cluster: &LocalCluster, database: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&cluster.conninfo(database), NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Runs one query and returns the first column of every row as text.
pub async fn column(client: &Client, sql: &str) -> Vec<Option<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        })
        .collect()
}

/// Runs SQL (several statements allowed).
pub async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Path of a file under `../shared/testdata` (or `$PGSYNC_SHARED_TESTDATA`),
/// or `None` with a message saying the sample data is missing.
pub fn shared_testdata(rel: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("PGSYNC_SHARED_TESTDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata")
        });
    let path = base.join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "sample data {} not found: set PGSYNC_SHARED_TESTDATA to the shared testdata folder",
            path.display()
        );
        None
    }
}
