//! Servers restarting and connections being terminated while apply streams:
//! pgsync reconnects with backoff inside the task's retry windows, loses
//! nothing, and past the window stops with the cause, resumable later.

use std::time::Duration;

use crate::support::cli::{Workspace, expect_exit, stop_gracefully, text};
use crate::support::pg::{Pair, column, connect, exec};
use crate::support::sync::assert_converges;

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

fn writes(from: i32) -> String {
    format!(
        "insert into t select g, 'v' || g from generate_series({from}, {}) g; update t set v = v || '!' where id % 7 = 0",
        from + 199
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_terminated_connections_are_survived() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create table t (id int primary key, v text)"],
        )
        .unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "rc", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "rc");

    // The destination restarts while changes keep coming.
    let src = connect(&pair.source, "app").await;
    exec(&src, &writes(1)).await;
    pair.destination.stop().unwrap();
    exec(&src, &writes(1000)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.destination.restart().unwrap();
    let dst = connect(&pair.destination, "app").await;
    assert_converges(&src, &dst, 60, "after the destination restarted").await;

    // The source restarts.
    drop(src);
    pair.source.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.source.restart().unwrap();
    let src = connect(&pair.source, "app").await;
    exec(&src, &writes(2000)).await;
    assert_converges(&src, &dst, 60, "after the source restarted").await;

    // Someone terminates the WAL sender and the apply session.
    exec(&src, "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = 'dts_sync_rc'").await;
    exec(&dst, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pgsync' and pid <> pg_backend_pid()").await;
    exec(&src, &writes(3000)).await;
    assert_converges(&src, &dst, 60, "after pg_terminate_backend").await;

    assert!(
        apply.try_wait().unwrap().is_none(),
        "apply exited instead of reconnecting"
    );
    stop_gracefully(&ws, &mut apply, "rc");
    let log = std::fs::read_to_string(ws.log("rc", "err")).unwrap();
    assert!(log.contains("retrying in"), "{log}");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_window_the_task_stops_and_a_later_apply_resumes() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create table t (id int primary key, v text)"],
        )
        .unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "window", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let src = connect(&pair.source, "app").await;
    exec(&src, &writes(1)).await;
    pair.destination.stop().unwrap();
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("PGSYNC_RETRY_SECONDS", "4,1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped after retrying for 4 s"), "{err}");
    assert!(err.contains("on endpoint \"dst\""), "{err}");
    pair.destination.restart().unwrap();
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let dst = connect(&pair.destination, "app").await;
    assert_converges(&src, &dst, 30, "after resuming").await;
    assert_eq!(
        column(&dst, "select count(*) from t").await,
        [Some("200".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}
