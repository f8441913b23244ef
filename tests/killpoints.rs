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
    // pgsync's own check agrees with the independent SQL above.
    let out = ws.run(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify after {failpoint}: {}",
        text(&out)
    );
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

/// `big` is cut into about a dozen key ranges (`PGSYNC_CHUNK_BYTES`).
const CHUNKED: &str = "
create table big (id int primary key, v int not null, pad text);
insert into big select g, g, md5(g::text) from generate_series(1, 20000) g;
create table other (id int primary key, v int);
insert into other select g, g from generate_series(1, 500) g;
analyze;
";

/// Runs apply with the small chunk size (and `failpoint` armed, when given).
fn apply_chunked(ws: &Workspace, jobs: &str, failpoint: Option<&str>) -> std::process::Output {
    let mut cmd = ws.command(&[
        "apply",
        "--auto-approve",
        "--exit-when-caught-up",
        "--jobs",
        jobs,
    ]);
    cmd.env("PGSYNC_CHUNK_BYTES", crate::chunked::CHUNK_BYTES);
    if let Some(f) = failpoint {
        cmd.env("PGSYNC_FAILPOINTS", f);
    }
    cmd.output().expect("run pgsync")
}

fn record(ws: &Workspace, task: &str) -> serde_json::Value {
    let out = expect_exit(&ws.run(&["state", "show", &format!("task.{task}")]), 0);
    serde_json::from_str(&out).expect("state show prints JSON")
}

/// Writes between the kill and the resume, in early (kept) and late
/// (copied again) key ranges: updates, deletes, inserts, and rows moving
/// from one range to the other.
const BETWEEN: &str = "
update big set v = -v where id <= 20 or id >= 19980;
delete from big where id in (30, 19970);
insert into big values (-7, 7, 'early'), (25000, 25000, 'late');
update big set id = 30001 where id = 2;
update big set id = -30001 where id = 19999;
update other set v = 0 where id = 1;
";

/// Kill after the third chunk of `big` is recorded (one job, so chunks go in
/// key order): the resume keeps those three chunks — a row only the
/// destination has in the first chunk's range survives — copies the rest
/// under a new snapshot, and the stream skips, per key range, exactly the
/// changes that range's copy holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_initial_sync_keeps_the_finished_chunks() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", CHUNKED]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "per_chunk", BODY);
    let out = apply_chunked(&ws, "1", Some("copy.after_chunk_recorded@3"));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", text(&out));
    let before = record(&ws, "per_chunk");
    let chunks = &before["chunks"]["public.big"];
    let done: Vec<&String> = chunks["done"].as_object().unwrap().keys().collect();
    assert_eq!(done, ["0", "1", "2"], "{before:#}");
    let first_bound = chunks["split"]["bounds"][0].as_i64().unwrap();
    assert!(first_bound > 20, "{before:#}");
    // A row only the destination has, in the first chunk's range.
    exec(&dst, "insert into big values (-1, -1, 'marker')").await;
    exec(&src, BETWEEN).await;

    let out = apply_chunked(&ws, "2", None);
    expect_exit(&out, 0);
    let n = chunks["split"]["bounds"].as_array().unwrap().len() + 1;
    assert!(
        text(&out).contains(&format!(
            "public.big: 3 of {n} chunks copied before are kept; the other {} are copied under the new snapshot",
            n - 3
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        column(&dst, "select pad from big where id = -1").await,
        [Some("marker".to_owned())],
        "the first chunk was copied again"
    );
    let rows =
        "select id || ':' || v || ':' || coalesce(pad, '') from big where id <> -1 order by id";
    assert_eq!(column(&src, rows).await, column(&dst, rows).await);
    let other = "select id || ':' || v from other order by id";
    assert_eq!(column(&src, other).await, column(&dst, other).await);
    // Kept chunks keep the slot's point; the others have the new one.
    let after = record(&ws, "per_chunk");
    let slot_point = after["consistent_lsn"].as_str().unwrap().to_owned();
    let done = after["chunks"]["public.big"]["done"].as_object().unwrap();
    assert_eq!(done.len(), n, "{after:#}");
    for (c, d) in done {
        let point = d["snapshot_lsn"].as_str().unwrap();
        if ["0", "1", "2"].contains(&c.as_str()) {
            assert_eq!(point, slot_point, "chunk {c}: {after:#}");
        } else {
            assert_ne!(point, slot_point, "chunk {c}: {after:#}");
        }
    }
    // The stream goes on, in every range.
    exec(
        &src,
        "update big set v = 1 where id in (1, 19000); delete from big where id = 4;
         insert into big values (-8, 8, 'e2'), (26000, 1, 'l2'); truncate other;",
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(column(&src, rows).await, column(&dst, rows).await);
    assert_eq!(column(&src, other).await, column(&dst, other).await);
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// Kill right after a chunk's destination commit, before it is recorded
/// (two jobs): the resume empties that chunk's key range before copying it
/// again, so no row is doubled; a TRUNCATE between the two snapshots
/// empties only the key ranges copied before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_committed_but_not_recorded_is_copied_once() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", CHUNKED]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "in_flight", BODY);
    let out = apply_chunked(&ws, "2", Some("copy.after_chunk_commit@3"));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", text(&out));
    let before = record(&ws, "in_flight");
    let chunks = &before["chunks"]["public.big"];
    // Two workers: the second commit's record may not have been written
    // when the third commit aborted.
    let done = chunks["done"].as_object().unwrap().len();
    let started = chunks["started"].as_array().unwrap().len();
    assert!((1..=2).contains(&done) && started > done, "{before:#}");
    exec(
        &src,
        "truncate big; insert into big select g, g, 'after' from generate_series(1, 20000, 3) g;",
    )
    .await;
    exec(&src, BETWEEN).await;
    let out = apply_chunked(&ws, "2", None);
    expect_exit(&out, 0);
    assert!(
        text(&out).contains("begun before: their key ranges are emptied first"),
        "{}",
        text(&out)
    );
    assert_converges(&src, &dst, 30, "after a chunk committed but not recorded").await;
    exec(
        &src,
        "update big set v = v + 1 where id % 50 = 1; delete from big where id % 50 = 4;
         insert into big values (-9, 9, 's'), (50000, 1, 's'); update other set v = -v;",
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_converges(&src, &dst, 30, "streaming after the resume").await;
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// Randomized kill points in a chunked copy: each round kills apply at a
/// random chunk commit, chunk record or COPY message, with 1–3 jobs, and
/// writes on the source in between; the last apply finishes and both sides
/// must be equal; three runs. The seed is printed (PGSYNC_KILL_SEED
/// replays it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_chunk_kill_points_lose_and_duplicate_nothing() {
    const RUNS: u32 = 3;
    let seed: u64 = std::env::var("PGSYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(11)
        });
    eprintln!("randomized chunk kill points: PGSYNC_KILL_SEED={seed}");
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % n
    };
    // Several runs, each from a fresh pair, several kills each.
    for run in 0..RUNS {
        let pair = Pair::start();
        pair.source.psql("app", &["-c", CHUNKED]).unwrap();
        let src = connect(&pair.source, "app").await;
        let dst = connect(&pair.destination, "app").await;
        let ws = Workspace::new(&pair.source, &pair.destination, "rchunk", BODY);
        const POINTS: [&str; 3] = [
            "copy.after_chunk_commit",
            "copy.after_chunk_recorded",
            "copy.mid_table",
        ];
        let mut kills = 0;
        for round in 0..8u64 {
            let point = POINTS[(next(3) - 1) as usize];
            // Small counts: a resumed run has only the chunks left to do.
            let at = if point == "copy.mid_table" {
                next(3000)
            } else {
                next(3)
            };
            let jobs = next(3).to_string();
            let out = apply_chunked(&ws, &jobs, Some(&format!("{point}@{at}")));
            if out.status.signal() == Some(libc::SIGABRT) {
                kills += 1;
            } else {
                // The copy finished before the point was reached.
                expect_exit(&out, 0);
                break;
            }
            let a = next(20_000);
            let b = next(20_000);
            exec(
                &src,
                &format!(
                    "update big set v = v + {round} where id in ({a}, {b});
                     delete from big where id = {b} + 1;
                     insert into big values (-{round} - 100, 1, 'r'), ({round} + 40000, 2, 'r');
                     update big set id = id + 60000 where id = {a} + 2;
                     update other set v = v + 1 where id = {round} + 1;"
                ),
            )
            .await;
        }
        eprintln!("run {run}: {kills} kills");
        expect_exit(&apply_chunked(&ws, "2", None), 0);
        assert_converges(
            &src,
            &dst,
            30,
            &format!("run {run}: after {kills} chunk kill points (seed {seed})"),
        )
        .await;
        expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
    }
}
