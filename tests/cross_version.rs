//! Servers of different major versions (`docs/testing.md`, "Version
//! matrix"): the clusters run the builds the environment names, and a
//! destination older than its source is warned about by the precheck (as
//! DTS does) without stopping the sync.
//!
//! The other test files run unchanged against whatever pair
//! `PGSYNC_TEST_SOURCE_BINDIR` / `PGSYNC_TEST_DESTINATION_BINDIR` select.

use std::path::PathBuf;

use pgsync::cluster::LocalCluster;

use crate::support::cli::{Workspace, expect_exit, text};
use crate::support::pg::{
    DESTINATION_BINDIR_VAR, Pair, SOURCE_BINDIR_VAR, bindir_major, column, connect, pair_majors,
    side_bindir,
};
use crate::support::sync::assert_converges;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_run_the_versions_the_environment_names() {
    let pair = Pair::start();
    let (expected_source, expected_destination) = pair_majors();
    eprintln!("version pair: source {expected_source} -> destination {expected_destination}");
    for (cluster, expected, side) in [
        (&pair.source, expected_source, "source"),
        (&pair.destination, expected_destination, "destination"),
    ] {
        let client = connect(cluster, "app").await;
        let num = column(&client, "show server_version_num").await;
        let num: u32 = num[0].as_deref().unwrap().parse().unwrap();
        assert_eq!(num / 10000, expected, "{side} runs {num}");
        assert_eq!(cluster.major_version(), Some(expected), "{side} PG_VERSION");
    }
}

/// The oldest and the newest build among the two sides' and the default
/// installation, with their majors.
fn oldest_and_newest() -> ((u32, PathBuf), (u32, PathBuf)) {
    let mut dirs: Vec<(u32, PathBuf)> = [
        side_bindir(SOURCE_BINDIR_VAR),
        side_bindir(DESTINATION_BINDIR_VAR),
        pgsync::cluster::bindir().expect("a default PostgreSQL installation"),
    ]
    .into_iter()
    .map(|d| (bindir_major(&d), d))
    .collect();
    dirs.sort();
    (dirs[0].clone(), dirs[dirs.len() - 1].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_destination_is_warned_about_and_still_synchronized() {
    let ((old, old_dir), (new, new_dir)) = oldest_and_newest();
    if old == new {
        eprintln!(
            "only PostgreSQL {old} is available: the older-destination warning needs two majors \
             (set {SOURCE_BINDIR_VAR} / {DESTINATION_BINDIR_VAR}, see docs/testing.md); not checked"
        );
        return;
    }
    eprintln!("older destination: source {new} -> destination {old}");
    let (source, destination) = std::thread::scope(|s| {
        let src = s.spawn(|| LocalCluster::start_in(&new_dir, &[]));
        let dst = s.spawn(|| LocalCluster::start_in(&old_dir, &[]));
        (src.join().unwrap(), dst.join().unwrap())
    });
    let pair = Pair::with_app_database(
        source.expect("start the newer source"),
        destination.expect("start the older destination"),
    );
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, v text); \
                 insert into t select g, 'row ' || g from generate_series(1, 100) g",
            ],
        )
        .unwrap();
    let body = "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";
    let ws = Workspace::new(&pair.source, &pair.destination, "older", body);

    let warning = format!(
        "task.older: precheck [WARN] destination.version: destination major version {old} is older than the source's {new}"
    );
    let out = ws.run(&["precheck"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(&warning),
        "missing {warning:?} in:\n{}",
        text(&out)
    );
    assert!(
        err.contains("task.older:   fix: use a destination of the same or a newer major version"),
        "{}",
        text(&out)
    );
    expect_exit(&out, 0);

    // A warning, not a failure: the sync runs.
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&warning),
        "{}",
        text(&out)
    );
    expect_exit(&out, 0);
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    assert_converges(&src, &dst, 30, "older destination").await;
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_as_new_as_the_source_passes_the_version_check() {
    let pair = Pair::start();
    let (s, d) = (
        pair.source.major_version().unwrap(),
        pair.destination.major_version().unwrap(),
    );
    if d < s {
        eprintln!("destination {d} is older than source {s}: covered by the test above");
        return;
    }
    pair.source
        .psql("app", &["-c", "create table t (id int primary key)"])
        .unwrap();
    let body = "  sync_types  = [\"schema\", \"full\"]\n  schema \"public\" {}";
    let ws = Workspace::new(&pair.source, &pair.destination, "same", body);
    let out = ws.run(&["precheck"]);
    let expected =
        format!("task.same: precheck [pass] destination.version: source {s}, destination {d}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "missing {expected:?} in:\n{}",
        text(&out)
    );
    expect_exit(&out, 0);
}
