//! Large source transactions are applied with bounded memory.
//!
//! The source runs with `logical_decoding_work_mem = 64kB`, so from
//! PostgreSQL 14 on (pgoutput protocol 2, `streaming 'on'`) every
//! transaction here is streamed while still in progress: pgsync keeps it in
//! an anonymous spill file in `$TMPDIR` (each test gives the background
//! apply its own) until Stream Commit or Stream Abort. The tests watch that
//! happen from outside, in `status.json` (`spill_bytes`,
//! `spill_transactions`, `streamed_transactions`, `peak_rss_bytes`) and in
//! `/proc/PID/fd` (the spill files pgsync holds open), and compare both
//! sides row by row. Against a PostgreSQL 13 source (protocol 1, nothing
//! streamed) only the outcomes are checked.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::support::cli::{Workspace, expect_exit, stop_gracefully};
use crate::support::pg::{Pair, column, connect, exec, pair_majors};
use crate::support::sync::assert_converges;

/// The ceiling documented in docs/architecture.md.
const CEILING: u64 = 256 * 1024 * 1024;

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

/// Whether the source streams in-progress transactions (14+).
fn streams() -> bool {
    pair_majors().0 >= 14
}

/// Two clusters, the source streaming anything above 64 kB, with `setup`
/// run on the source; a task over schema public that has done its initial
/// sync.
async fn synced(setup: &str, task: &str) -> (Pair, Workspace, Client, Client) {
    synced_with(setup, task, BODY, &[]).await
}

/// [`synced`] with the task body `body` and more source settings.
async fn synced_with(
    setup: &str,
    task: &str,
    body: &str,
    settings: &[&str],
) -> (Pair, Workspace, Client, Client) {
    let mut source_settings = vec!["logical_decoding_work_mem = 64kB"];
    source_settings.extend_from_slice(settings);
    let pair = Pair::start_with(&source_settings, &[]);
    pair.source.psql("app", &["-c", setup]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, task, body);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    (pair, ws, src, dst)
}

/// `apply` in the background with its own `$TMPDIR` (`spill`), once it
/// streams.
fn streaming_apply(ws: &Workspace, spill: &Path, task: &str) -> Child {
    let out = std::fs::File::create(ws.log(task, "out")).unwrap();
    let err = std::fs::File::create(ws.log(task, "err")).unwrap();
    let child = ws
        .command(&["apply", "--auto-approve"])
        .env("TMPDIR", spill)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn pgsync");
    wait_for(ws, task, 60, "the stream to start", |t| {
        t["phase"] == "streaming"
    });
    child
}

/// The task's entry of the running apply's `status.json`.
fn task_status(ws: &Workspace, task: &str) -> serde_json::Value {
    std::fs::read_to_string(ws.path().join(".pgsync/status.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .map(|s| s["tasks"][task].clone())
        .unwrap_or_default()
}

/// Waits until the task's status satisfies `ok`, panicking with the last
/// status after `secs`.
fn wait_for(
    ws: &Workspace,
    task: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = task_status(ws, task);
        if ok(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "waited {secs} s for {what}; status: {status}\n{}",
            std::fs::read_to_string(ws.log(task, "err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn number(status: &serde_json::Value, field: &str) -> u64 {
    status[field].as_u64().unwrap_or(0)
}

/// The files under `dir` that process `pid` holds open (the spill files:
/// they have no name, `/proc` shows `dir/#inode (deleted)`).
fn open_files_in(pid: u32, dir: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.starts_with(dir))
                .count()
        })
        .unwrap_or(0)
}

async fn count(client: &Client, sql: &str) -> i64 {
    column(client, sql).await[0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transaction_streams_while_in_progress_within_the_memory_ceiling() {
    let (pair, ws, src, dst) = synced(
        "create table big (id int primary key, pad text not null)",
        "large",
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "large");

    // ~300 MB of row data (incompressible text) in one transaction, left
    // open.
    let writer = connect(&pair.source, "app").await;
    exec(&writer, "begin").await;
    exec(
        &writer,
        "insert into big select g, (select string_agg(md5(g::text || i), '') from generate_series(1, 64) i)
           from generate_series(1, 150000) g",
    )
    .await;
    let wal = count(
        &src,
        "select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint",
    )
    .await;
    assert!(
        wal > 300_000_000,
        "the transaction is smaller than intended: {wal} bytes of WAL"
    );
    if streams() {
        // It reaches pgsync before its commit: all but the last 64 kB, each
        // insert ~2,070 bytes of pgoutput plus a 12-byte record header.
        let status = wait_for(
            &ws,
            "large",
            120,
            "the open transaction to be spilled",
            |t| number(t, "spill_bytes") > 300_000_000,
        );
        assert_eq!(number(&status, "spill_transactions"), 1, "{status}");
        assert_eq!(open_files_in(apply.id(), spill.path()), 1);
        // Named files: none (the spill files are anonymous).
        assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
        assert_eq!(count(&dst, "select count(*) from big").await, 0);
    }
    exec(&writer, "commit").await;
    assert_converges(&src, &dst, 180, "after the large transaction").await;
    assert_eq!(count(&dst, "select count(*) from big").await, 150_000);
    let status = wait_for(&ws, "large", 30, "the spill to be released", |t| {
        number(t, "spill_transactions") == 0
    });
    assert_eq!(number(&status, "spill_bytes"), 0, "{status}");
    if streams() {
        assert_eq!(number(&status, "streamed_transactions"), 1, "{status}");
    }
    assert_eq!(open_files_in(apply.id(), spill.path()), 0);
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join(".pgsync/status.json")).unwrap(),
    )
    .unwrap();
    let peak = doc["peak_rss_bytes"].as_u64().expect("peak RSS published");
    assert!(
        peak < CEILING,
        "peak RSS {peak} bytes exceeds the {CEILING}-byte ceiling"
    );
    eprintln!(
        "peak RSS while applying a ~300 MB transaction: {} MB",
        peak / 1_048_576
    );
    stop_gracefully(&ws, &mut apply, "large");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_large_streamed_transaction_leaves_no_trace() {
    let (pair, ws, src, dst) = synced(
        "create table big (id int primary key, pad text not null);
         insert into big values (0, 'before')",
        "aborted",
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "aborted");

    let writer = connect(&pair.source, "app").await;
    exec(&writer, "begin").await;
    exec(
        &writer,
        "insert into big select g, repeat(md5(g::text), 60) from generate_series(1, 20000) g;
         update big set pad = 'changed' where id = 0",
    )
    .await;
    if streams() {
        let status = wait_for(
            &ws,
            "aborted",
            60,
            "the open transaction to be spilled",
            |t| number(t, "spill_bytes") > 38_000_000,
        );
        assert_eq!(number(&status, "spill_transactions"), 1, "{status}");
        assert_eq!(open_files_in(apply.id(), spill.path()), 1);
    }
    exec(&writer, "rollback").await;
    // A later transaction shows the stream went past the abort.
    exec(&src, "insert into big values (-1, 'after')").await;
    assert_converges(&src, &dst, 60, "after the rollback").await;
    assert_eq!(
        column(
            &dst,
            "select string_agg(id || '=' || pad, ',' order by id) from big"
        )
        .await,
        [Some("-1=after,0=before".to_owned())]
    );
    let status = wait_for(&ws, "aborted", 30, "the spill to be released", |t| {
        number(t, "spill_transactions") == 0
    });
    assert_eq!(number(&status, "spill_bytes"), 0, "{status}");
    assert_eq!(number(&status, "streamed_transactions"), 0, "{status}");
    assert_eq!(open_files_in(apply.id(), spill.path()), 0);
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    stop_gracefully(&ws, &mut apply, "aborted");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_subtransactions_inside_a_streamed_transaction_leave_exactly_the_surviving_rows()
 {
    let (pair, ws, src, dst) = synced(
        "create table bulk (id int primary key, pad text, batch text)",
        "savepoints",
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "savepoints");
    // One psql -f, so savepoints and the DO blocks keep their meaning.
    let script = ws.path().join("savepoints.sql");
    std::fs::write(
        &script,
        "begin;
insert into bulk select g, repeat('x', 200), 'kept-1' from generate_series(1, 30000) g;
savepoint s1;
insert into bulk select g, repeat('y', 200), 'rolled-back' from generate_series(30001, 60000) g;
savepoint s1a;
insert into bulk select g, repeat('w', 200), 'rolled-back-nested' from generate_series(60001, 61000) g;
release savepoint s1a;
rollback to savepoint s1;
insert into bulk select g, 'z', 'kept-2' from generate_series(61001, 61005) g;
savepoint s2;
update bulk set batch = 'kept-1-updated' where id % 1000 = 0;
release savepoint s2;
savepoint s3;
delete from bulk where id <= 5000;
update bulk set pad = 'rolled back' where id > 5000 and batch = 'kept-1';
rollback to savepoint s3;
do $$ begin
  insert into bulk values (200000, 'inside exception block', 'rolled-back');
  raise exception 'force a subtransaction abort';
exception when others then null;
end $$;
do $$ begin
  for i in 1..500 loop
    begin
      insert into bulk values (300000 + i, repeat('v', 300), 'rolled-back-loop');
      raise exception 'abort this one';
    exception when others then null;
    end;
  end loop;
end $$;
insert into bulk select g, repeat('q', 200), 'kept-3' from generate_series(400001, 410000) g;
commit;
",
    )
    .unwrap();
    pair.source
        .psql("app", &["-f", script.to_str().unwrap()])
        .unwrap();
    assert_converges(&src, &dst, 120, "after the savepoints").await;
    assert_eq!(
        column(
            &dst,
            "select string_agg(batch || ' ' || n || ' ' || len, ', ' order by batch)
               from (select batch, count(*) n, sum(length(pad)) len from bulk group by batch) s"
        )
        .await,
        [Some(
            "kept-1 29970 5994000, kept-1-updated 30 6000, kept-2 5 5, kept-3 10000 2000000"
                .to_owned()
        )]
    );
    let status = wait_for(&ws, "savepoints", 30, "the commit to be counted", |t| {
        number(t, "spill_transactions") == 0
    });
    if streams() {
        assert_eq!(number(&status, "streamed_transactions"), 1, "{status}");
    }
    stop_gracefully(&ws, &mut apply, "savepoints");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_interleaved_large_transactions_apply_in_commit_order() {
    let (pair, ws, src, dst) = synced(
        "create table t (id int primary key, who text not null, pad text not null)",
        "interleaved",
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "interleaved");
    let one = connect(&pair.source, "app").await;
    let two = connect(&pair.source, "app").await;
    exec(&one, "begin").await;
    exec(&two, "begin").await;
    // Alternating chunks, each far above 64 kB: the server streams one
    // transaction, then the other, then the first again.
    for round in 0..4 {
        for (client, who, base) in [(&one, "one", 0), (&two, "two", 100_000)] {
            let from = base + round * 5000 + 1;
            exec(
                client,
                &format!(
                    "insert into t select g, '{who}', repeat(md5(g::text), 6) from generate_series({from}, {}) g",
                    from + 4999
                ),
            )
            .await;
        }
    }
    if streams() {
        let status = wait_for(
            &ws,
            "interleaved",
            60,
            "both transactions to be spilled",
            |t| number(t, "spill_transactions") == 2 && number(t, "spill_bytes") > 8_000_000,
        );
        assert_eq!(open_files_in(apply.id(), spill.path()), 2, "{status}");
    }
    // Two commits first; one then sees two's rows (read committed) and
    // rewrites them: applied in any other order the destination would keep
    // 'two'.
    exec(&two, "commit").await;
    exec(&one, "update t set who = 'one saw two' where who = 'two'").await;
    exec(&one, "commit").await;
    assert_converges(&src, &dst, 120, "after the interleaved transactions").await;
    assert_eq!(
        column(
            &dst,
            "select string_agg(who || ' ' || n, ', ' order by who) from (select who, count(*) n from t group by who) s"
        )
        .await,
        [Some("one 20000, one saw two 20000".to_owned())]
    );
    let status = wait_for(&ws, "interleaved", 30, "the spills to be released", |t| {
        number(t, "spill_transactions") == 0
    });
    if streams() {
        assert_eq!(number(&status, "streamed_transactions"), 2, "{status}");
    }
    assert_eq!(open_files_in(apply.id(), spill.path()), 0);
    stop_gracefully(&ws, &mut apply, "interleaved");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_longer_than_the_wal_sender_timeout_keeps_the_connection() {
    // Throttled to 2,500 rows/s, 15,000 rows take ~6 s against a 2 s
    // wal_sender_timeout. From 14 on the transaction is replayed from its
    // spill file, without reading the replication connection; on 13 it
    // arrives after its commit and is read more slowly than it is sent, so
    // the server's reply requests wait behind its data. Either way, status
    // updates sent unasked keep the WAL sender from ending the connection.
    let (_pair, ws, src, dst) = synced_with(
        "create table t (id int primary key, pad text not null)",
        "slow",
        &format!("{BODY}\n  throttle {{\n    incremental_rps = 2500\n  }}"),
        &["wal_sender_timeout = '2s'"],
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "slow");
    let committed = Instant::now();
    exec(
        &src,
        "insert into t select g, repeat(md5(g::text), 3) from generate_series(1, 15000) g",
    )
    .await;
    assert_converges(&src, &dst, 60, "after the slow apply").await;
    let took = committed.elapsed();
    let status = wait_for(&ws, "slow", 30, "the commit to be counted", |t| {
        number(t, "spill_transactions") == 0
    });
    stop_gracefully(&ws, &mut apply, "slow");
    let log = std::fs::read_to_string(ws.log("slow", "err")).unwrap_or_default()
        + &std::fs::read_to_string(ws.log("slow", "out")).unwrap_or_default();
    assert!(
        !log.contains("stream interrupted"),
        "the connection was lost while applying:\n{log}"
    );
    assert!(status["last_error"].is_null(), "{status}");
    assert!(
        took > Duration::from_secs(4),
        "applying took {took:?}, not longer than two timeouts"
    );
    if streams() {
        assert_eq!(number(&status, "streamed_transactions"), 1, "{status}");
    }
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_inside_a_streamed_transaction_is_replayed_in_place() {
    // DDL capture rows and the new relation descriptions travel inside the
    // stream blocks, between the changes before and after them.
    let (pair, ws, src, dst) = synced(
        "create table t (id int primary key, v text not null)",
        "ddl",
    )
    .await;
    let spill = tempfile::tempdir().unwrap();
    let mut apply = streaming_apply(&ws, spill.path(), "ddl");
    let script = ws.path().join("ddl.sql");
    std::fs::write(
        &script,
        "begin;
insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 10000) g;
alter table t add column extra text default 'd';
update t set extra = 'e' || id where id % 2 = 0;
create table t2 (id int primary key, t_id int references t(id));
insert into t2 select g, g from generate_series(1, 5000) g;
savepoint s;
alter table t add column doomed int;
update t set doomed = 1;
rollback to savepoint s;
commit;
",
    )
    .unwrap();
    pair.source
        .psql("app", &["-f", script.to_str().unwrap()])
        .unwrap();
    assert_converges(&src, &dst, 90, "after DDL inside a streamed transaction").await;
    assert_eq!(
        column(
            &dst,
            "select string_agg(attname, ',' order by attnum) from pg_attribute
              where attrelid = 'public.t'::regclass and attnum > 0 and not attisdropped"
        )
        .await,
        [Some("id,v,extra".to_owned())]
    );
    assert_eq!(
        column(
            &dst,
            "select (select count(*) from t where extra = 'd') || ' ' || (select count(*) from t2)"
        )
        .await,
        [Some("5000 5000".to_owned())]
    );
    let status = wait_for(&ws, "ddl", 30, "the commit to be counted", |t| {
        number(t, "spill_transactions") == 0
    });
    if streams() {
        assert_eq!(number(&status, "streamed_transactions"), 1, "{status}");
    }
    stop_gracefully(&ws, &mut apply, "ddl");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}
