//! A source and a destination cluster per test, plus small SQL helpers.

use pgsync::cluster::LocalCluster;
use tokio_postgres::{Client, NoTls};

/// Two throwaway clusters, as in a real deployment.
pub struct Pair {
    pub source: LocalCluster,
    pub destination: LocalCluster,
}

impl Pair {
    /// Starts both clusters and creates database `app` on each.
    pub fn start() -> Pair {
        let source = LocalCluster::start(&[]).expect("start source cluster");
        let destination = LocalCluster::start(&[]).expect("start destination cluster");
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
