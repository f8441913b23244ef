//! Throttles, measured: each `throttle` limit holds within ±10 % of its
//! setting over a measured window on the destination, and a changed
//! throttle is an in-place update (`~`) that takes effect on the next apply
//! without copying again.
//!
//! Each limit is measured over a 30 s window, after 1.5 s of warm-up (the
//! limiter's burst is 50 ms worth of the rate).
//!
//! Windows are measured on the destination: `pg_stat_progress_copy`
//! (`tuples_processed`, `bytes_processed` of the running `COPY … FROM
//! STDIN`) for the copy, committed row counts and bytes for the stream;
//! `full_qps` on the source, from its statement log.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::support::cli::{Workspace, expect_exit, text};
use crate::support::pg::{Pair, connect};

const WINDOW: Duration = Duration::from_secs(30);

fn body(throttle: &str) -> String {
    format!(
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {{}}\n  throttle {{\n    {throttle}\n  }}"
    )
}

async fn value(client: &Client, sql: &str) -> f64 {
    client
        .query_one(sql, &[])
        .await
        .map(|r| r.get::<_, Option<f64>>(0).unwrap_or(0.0))
        .unwrap_or(0.0)
}

/// Waits until `sql` is positive, then 1.5 s more, and measures its growth
/// per second over [`WINDOW`].
async fn rate(client: &Client, sql: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while value(client, sql).await <= 0.0 {
        assert!(Instant::now() < deadline, "nothing moved: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (t0, v0) = (Instant::now(), value(client, sql).await);
    tokio::time::sleep(WINDOW).await;
    let (t1, v1) = (Instant::now(), value(client, sql).await);
    (v1 - v0) / (t1 - t0).as_secs_f64()
}

fn assert_within(measured: f64, setting: f64, what: &str) {
    let ratio = measured / setting;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: measured {measured:.1}/s for a setting of {setting}/s ({:.1} %)",
        ratio * 100.0
    );
}

/// Full copy: `full_rps` and `full_mbps` on one large table.
async fn full(throttle: &str, setting: f64, metric: &str, rows: u32, width: u32) {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                &format!(
                    "create table big (id int primary key, v text);
                     insert into big select g, repeat('x', {width}) from generate_series(1, {rows}) g;"
                ),
            ],
        )
        .unwrap();
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "th", &body(throttle));
    let mut child = ws.spawn(
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        "apply",
    );
    let measured = rate(
        &dst,
        &format!("select sum({metric})::float8 from pg_stat_progress_copy"),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_within(measured, setting, throttle);
}

#[tokio::test(flavor = "multi_thread")]
async fn full_rps_holds_over_a_window() {
    // 4,000 rows/s: the table takes ~40 s.
    full("full_rps = 4000", 4000.0, "tuples_processed", 160_000, 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_mbps_holds_over_a_window() {
    // 2 MB/s of ~1 KB rows: ~40 s.
    full("full_mbps = 2", 2e6, "bytes_processed", 80_000, 1000).await;
}

/// `full_qps`: many one-row tables, so the copy is mostly queries (per
/// table: its facts, its column list, its `COPY … TO STDOUT`), counted on
/// the source from its statement log (`log_statement = 'all'`, every line
/// stamped with the epoch time `%n` and the application name `%a`).
#[tokio::test(flavor = "multi_thread")]
async fn full_qps_holds_over_a_window() {
    let pair = Pair::start_with(
        &["log_statement = 'all'", "log_line_prefix = '%n [%a] '"],
        &[],
    );
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "do $$ begin for i in 1..600 loop
                   execute format('create table t%s (id int primary key, v text)', i);
                   execute format('insert into t%s values (1, ''x'')', i);
                 end loop; end $$",
            ],
        )
        .unwrap();
    let setting = 15.0;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "th",
        &body("full_qps = 15"),
    );
    let mut child = ws.spawn(
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        "apply",
    );
    // Source statements of pgsync sessions: (epoch seconds, text).
    let statements = |log: &str| -> Vec<(f64, String)> {
        log.lines()
            .filter_map(|l| {
                let (stamp, rest) = l.split_once(" [pgsync] ")?;
                let text = rest.strip_prefix("LOG:  ")?;
                (text.starts_with("statement: ") || text.starts_with("execute "))
                    .then(|| Some((stamp.parse().ok()?, text.to_owned())))?
            })
            .collect()
    };
    // The copy has begun once a worker imported the snapshot.
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = loop {
        let log = pair.source.server_log();
        if let Some((t, _)) = statements(&log)
            .into_iter()
            .find(|(_, s)| s.contains("set transaction snapshot"))
        {
            break t;
        }
        assert!(Instant::now() < deadline, "the copy never started:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (t0, t1) = (start + 1.5, start + 1.5 + WINDOW.as_secs_f64());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    while now() < t1 + 0.5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let still_copying = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        still_copying,
        "the copy ended before the window did: make the tables more"
    );
    let log = pair.source.server_log();
    let counted = statements(&log)
        .iter()
        .filter(|(t, _)| (t0..t1).contains(t))
        .count();
    assert_within(
        counted as f64 / WINDOW.as_secs_f64(),
        setting,
        "full_qps = 15",
    );
}

/// The stream: a backlog of one-row transactions drained under the limit.
async fn incremental(throttle: &str, setting: f64, metric: &str, txns: u32, width: u32) {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create table t (id int primary key, v text)"],
        )
        .unwrap();
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "th", &body(throttle));
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    pair.source
        .psql(
            "app",
            &[
                "-c",
                &format!(
                    "do $$ begin for i in 1..{txns} loop
                       insert into t values (i, repeat(md5(i::text), {width}));
                       commit;
                     end loop; end $$"
                ),
            ],
        )
        .unwrap();
    let mut child = ws.spawn(
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        "apply",
    );
    let measured = rate(&dst, metric).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_within(measured, setting, throttle);
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_rps_holds_over_a_window() {
    incremental(
        "incremental_rps = 500",
        500.0,
        "select count(*)::float8 from t",
        20_000,
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_mbps_holds_over_a_window() {
    // Rows of ~6.4 KB at 0.5 MB/s: ~78 rows/s, ~46 s; bytes as pgoutput sends
    // them (the text of every value).
    incremental(
        "incremental_mbps = 0.5",
        0.5e6,
        "select coalesce(sum(octet_length(id::text) + octet_length(v)), 0)::float8 from t",
        3600,
        200,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_throttle_is_an_in_place_update_that_applies_without_copying() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, v text); insert into t values (0, 'seed')",
            ],
        )
        .unwrap();
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "th",
        &body("incremental_rps = 5000"),
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let config = ws.path().join("pgsync.hcl");
    let hcl = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        hcl.replace("incremental_rps = 5000", "incremental_rps = 300"),
    )
    .unwrap();
    let plan = ws.run(&["plan"]);
    let out = text(&plan);
    assert!(out.contains("~ task \"th\""), "{out}");
    assert!(
        out.contains(
            "~ throttle           = { incremental_rps = 5000 } -> { incremental_rps = 300 }"
        ) || (out.contains("incremental_rps = 5000") && out.contains("incremental_rps = 300")),
        "{out}"
    );
    assert!(
        !out.contains("-/+"),
        "a throttle change must not replace the task:\n{out}"
    );
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "do $$ begin for i in 1..12000 loop insert into t values (i, 'x'); commit; end loop; end $$",
            ],
        )
        .unwrap();
    let mut child = ws.spawn(
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        "apply",
    );
    let measured = rate(&dst, "select count(*)::float8 - 1 from t").await;
    let status = child.wait().unwrap();
    assert!(status.success(), "apply failed");
    let log = std::fs::read_to_string(ws.log("apply", "out")).unwrap_or_default()
        + &std::fs::read_to_string(ws.log("apply", "err")).unwrap_or_default();
    assert!(!log.contains("copying"), "the update copied again:\n{log}");
    assert_within(measured, 300.0, "incremental_rps = 300 after the change");
}
