//! Kill points: pgsync dies at once (a failpoint aborts the process, as
//! kill -9 would) at every named step of the initial sync and the stream,
//! and at randomized points; the next `apply` must resume with no row lost
//! and none applied twice (row counts and an ordered hash per table).

use std::os::unix::process::ExitStatusExt;

use crate::support::cli::{Workspace, expect_exit, text};
use crate::support::pg::{Pair, column, connect, exec, pair_majors};
use crate::support::sync::assert_converges;

const SETUP: &str = "
create table account (id int primary key, balance numeric(12,2) not null, note text);
insert into account select g, g * 10, repeat('n', 50) from generate_series(1, 60000) g;
create table ledger (id bigserial primary key, account_id int not null references account(id), amount numeric(12,2));
insert into ledger (account_id, amount) select 1 + g % 60000, g % 97 from generate_series(1, 30000) g;
create table tiny (k text primary key, v int);
insert into tiny values ('a', 1), ('b', 2);
";

/// Many small transactions, so stream kill points land mid-flight.
fn workload(round: u32) -> String {
    let mut sql = String::new();
    for i in 0..40 {
        let id = 1 + (round * 997 + i * 131) % 60000;
        sql.push_str(&format!(
            "begin; update account set balance = balance + 1 where id = {id};
             insert into ledger (account_id, amount) values ({id}, {i});
             delete from ledger where id = (select min(id) from ledger);
             update tiny set v = v + 1 where k = 'a'; commit;\n"
        ));
    }
    sql.push_str(&format!("insert into tiny values ('r{round}', {round});"));
    sql
}

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

/// Runs apply with `failpoint` armed and asserts that it died by abort.
fn run_killed(ws: &Workspace, failpoint: &str) {
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("PGSYNC_FAILPOINTS", failpoint)
        .output()
        .expect("run pgsync");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "failpoint {failpoint} was not reached:\n{}",
        text(&out)
    );
}

async fn kill_and_resume(failpoint: &str, during_stream: bool) {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "kp", BODY);
    if during_stream {
        expect_exit(
            &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
            0,
        );
    }
    exec(&src, &workload(1)).await;
    run_killed(&ws, failpoint);
    exec(&src, &workload(2)).await;
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    assert_converges(&src, &dst, 60, &format!("after failpoint {failpoint}")).await;
    // And the stream keeps working after the resume.
    exec(&src, &workload(3)).await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_converges(
        &src,
        &dst,
        60,
        &format!("streaming after failpoint {failpoint}"),
    )
    .await;
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

macro_rules! kill_points {
    ($($test:ident: $point:literal, $stream:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            kill_and_resume($point, $stream).await;
        }
    )*};
}

kill_points! {
    killed_after_the_slot_was_created: "initial.after_slot", false;
    killed_after_the_schema_committed: "initial.after_pre_data", false;
    killed_in_the_middle_of_a_table_copy: "copy.mid_table@3", false;
    killed_after_the_first_table_was_copied: "initial.after_table_copied", false;
    killed_before_keys_and_indexes: "initial.before_post_data", false;
    killed_before_streaming_was_recorded: "initial.before_streaming_recorded", false;
    killed_in_the_middle_of_a_source_transaction: "stream.mid_transaction@5", true;
    killed_before_the_destination_commit: "stream.before_commit@7", true;
    killed_after_the_destination_commit_before_feedback: "stream.after_commit@9", true;
}

/// One transaction far above the source's 64 kB `logical_decoding_work_mem`
/// (~85,000 changes), so a 14+ source streams it while in progress.
fn large(round: u32) -> String {
    format!(
        "begin;
         update account set balance = balance + {round}, note = 'streamed {round}';
         insert into ledger (account_id, amount) select 1 + g % 60000, {round} from generate_series(1, 20000) g;
         delete from ledger where id in (select id from ledger order by id limit 5000);
         commit;"
    )
}

/// pgsync dies (a failpoint) in the middle of replaying a streamed
/// transaction from its spill file, after thousands of its changes went to
/// the open destination transaction: the destination holds none of them,
/// the spill file died with the process, and the next apply applies the
/// transaction exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_a_streamed_commit() {
    if pair_majors().0 < 14 {
        eprintln!(
            "a PostgreSQL 13 source does not stream in-progress transactions: nothing to kill"
        );
        return;
    }
    let pair = Pair::start_with(&["logical_decoding_work_mem = 64kB"], &[]);
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "kps", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    exec(&src, &workload(1)).await;
    exec(&src, &large(1)).await;
    exec(&src, &workload(2)).await;
    let spill = tempfile::tempdir().unwrap();
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("PGSYNC_FAILPOINTS", "stream.mid_streamed_commit@30000")
        .env("TMPDIR", spill.path())
        .output()
        .expect("run pgsync");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "failpoint stream.mid_streamed_commit was not reached:\n{}",
        text(&out)
    );
    let streamed = "select count(*) from account where note = 'streamed 1'";
    assert_eq!(column(&dst, streamed).await, [Some("0".to_owned())]);
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    // More, including a second large transaction, then resume.
    exec(&src, &large(2)).await;
    exec(&src, &workload(3)).await;
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("TMPDIR", spill.path())
        .output()
        .expect("run pgsync");
    expect_exit(&out, 0);
    assert_converges(&src, &dst, 60, "after a kill inside a streamed commit").await;
    assert_eq!(
        column(
            &dst,
            "select note || ' ' || count(*) from account group by note order by note"
        )
        .await,
        [Some("streamed 2 60000".to_owned())]
    );
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join(".pgsync/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        status["tasks"]["kps"]["streamed_transactions"].as_u64(),
        Some(2),
        "{status}"
    );
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// Randomized kill points in the stream: each round arms one point at a
/// random hit count, writes, lets apply die there, and resumes. The seed is
/// printed so a failure can be replayed (PGSYNC_KILL_SEED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_stream_kill_points_lose_and_duplicate_nothing() {
    let seed: u64 = std::env::var("PGSYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    eprintln!("randomized kill points: PGSYNC_KILL_SEED={seed}");
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        // xorshift64: small and deterministic for the seed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % n
    };
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "rkp", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    const POINTS: [&str; 3] = [
        "stream.mid_transaction",
        "stream.before_commit",
        "stream.after_commit",
    ];
    const ROUNDS: u32 = 8;
    for round in 0..ROUNDS {
        exec(&src, &workload(10 + round)).await;
        let point = POINTS[(next(3) - 1) as usize];
        // 40 source transactions a round: 40 row changes to kill inside, and
        // (batched 4 at a time under failpoints) about 10 destination commits.
        let at = if point == "stream.mid_transaction" {
            next(35)
        } else {
            next(8)
        };
        run_killed(&ws, &format!("{point}@{at}"));
    }
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_converges(
        &src,
        &dst,
        60,
        &format!("after {ROUNDS} randomized kill points (seed {seed})"),
    )
    .await;
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// A resumed initial sync keeps the tables it copied: a row only the
/// destination has (written between the kill and the resume) survives in
/// the table copied before the kill, and the rest converges exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_initial_sync_copies_only_the_tables_left() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table a (id int primary key, v int);
                     insert into a select g, g from generate_series(1, 1000) g;
                     create table b (id int primary key, v int);
                     insert into b select g, g from generate_series(1, 1000) g;
                     create table c (id int primary key, v int);
                     insert into c select g, g from generate_series(1, 1000) g;",
            ],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "per_table",
        "  schema \"public\" {}",
    );
    // One table at a time, in name order: `a` is copied, then the kill.
    let out = ws
        .command(&["apply", "--auto-approve", "--jobs", "1"])
        .env("PGSYNC_FAILPOINTS", "initial.after_table_copied")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    exec(&dst, "insert into a values (100000, -1)").await;
    exec(&src, "update a set v = v + 1 where id <= 10; insert into b values (5000, 1); delete from c where id = 1").await;
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    assert!(
        text(&out)
            .contains("resuming the initial sync: 1 table copied under slot dts_sync_per_table"),
        "{}",
        text(&out)
    );
    let rows = |t: &str| format!("select id || ':' || v from {t} where id < 100000 order by id");
    for t in ["a", "b", "c"] {
        assert_eq!(
            column(&src, &rows(t)).await,
            column(&dst, &rows(t)).await,
            "table {t}"
        );
    }
    assert_eq!(
        column(&dst, "select v::text from a where id = 100000").await,
        [Some("-1".to_owned())],
        "table a was copied again"
    );
    // The temporary slot went with its session.
    assert_eq!(
        column(
            &src,
            "select string_agg(slot_name, ',') from pg_replication_slots"
        )
        .await,
        [Some("dts_sync_per_table".to_owned())]
    );
    exec(
        &src,
        "insert into b values (6000, 2); update c set v = 0 where id = 2",
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    for t in ["a", "b", "c"] {
        assert_eq!(
            column(&src, &rows(t)).await,
            column(&dst, &rows(t)).await,
            "table {t} streaming"
        );
    }
}
