//! DDL captured on the source while streaming is replayed on the
//! destination in commit order, interleaved with the DML around it.

use tokio_postgres::Client;

use crate::schema_sync::{assert_same, fingerprint};
use crate::support::cli::{Workspace, expect_exit, stop_gracefully};
use crate::support::pg::{Pair, column, connect, exec};
use crate::support::sync::assert_converges;

const SETUP: &str = "
create type mood as enum ('sad', 'ok');
create table person (id int primary key, name text not null, mood mood);
insert into person select g, 'p' || g, 'ok' from generate_series(1, 100) g;
create table doomed (id int primary key);
create table person_audit (id int primary key, at timestamptz default now());
insert into person_audit select g from generate_series(1, 3) g;
";

/// Each entry runs as one query string (one transaction unless it says otherwise).
const DDL_STREAM: &[&str] = &[
    // DDL alone.
    "alter table person add column age int",
    // Volatile defaults: the existing rows must get the source's values.
    "alter table person add column token float8 default random(), add column born timestamptz default clock_timestamp()",
    "create index person_name on person (name)",
    // DDL and DML in one transaction, the new table's rows included.
    "begin; create table orders (id bigserial primary key, person_id int references person(id), total numeric(10,2) default 0);
     insert into orders (person_id, total) select g, g * 1.5 from generate_series(1, 50) g;
     alter table person add column email text default 'none';
     update person set email = 'p' || id || '@x', age = id where id <= 10; commit",
    // Several statements in one query string, DDL between DML (autocommit each).
    "insert into person values (1000, 'late', 'sad'); alter table person rename column name to full_name; insert into person (id, full_name) values (1001, 'later')",
    "alter table orders alter column total type numeric(12,3)",
    "alter table person add constraint age_positive check (age > 0)",
    "alter table person alter column mood set default 'ok'",
    "alter type mood add value 'happy'",
    "update person set mood = 'happy' where id between 20 and 30",
    "create view happy_people as select id, full_name from person where mood = 'happy'",
    "create function person_count() returns bigint language sql as $$ select count(*) from person $$",
    "alter table person drop column age",
    "drop index person_name",
    "drop table doomed",
    "alter table orders rename to purchases",
    "insert into purchases (person_id, total) values (5, 99.999)",
    "truncate purchases restart identity",
    "insert into purchases (person_id, total) values (6, 1)",
    // The remaining forms of issue 3, each alone.
    "alter table person alter column full_name drop not null",
    "alter table person alter column full_name set not null",
    "alter table person alter column mood drop default",
    "create sequence counter increment by 3",
    "alter sequence counter increment by 5",
    "create type pair as (a int, b text)",
    "create view v_two as select id from person",
    "alter view v_two rename to v_three",
    "create function f_two() returns int language sql as 'select 2'",
    "alter function f_two() rename to f_three",
    "drop function f_three()",
    "drop view v_three",
    "drop sequence counter",
    "begin; alter table purchases add column note text; update purchases set note = 'n'; truncate person_audit; commit",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_while_streaming_is_replayed_in_commit_order() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "ddl",
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "ddl");
    for sql in DDL_STREAM {
        exec(&src, sql).await;
    }
    assert_converges(&src, &dst, 60, "after the DDL stream").await;
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines.into_iter().filter(|l| !l.contains("dts_")).collect()
    };
    // Sequence positions follow with the next heartbeat (every 2 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while strip(fingerprint(&dst).await) != strip(fingerprint(&src).await)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    let _ = apply.kill();
    let _ = apply.wait();
    assert_eq!(
        column(&dst, "select count(*) from happy_people").await,
        [Some("11".to_owned())]
    );
    assert_eq!(
        column(&dst, "select person_count()").await,
        [Some("102".to_owned())]
    );
    let log = std::fs::read_to_string(ws.log("ddl", "err")).unwrap_or_default();
    assert!(!log.contains("error"), "{log}");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
    assert_eq!(
        column(&src, "select (select count(*) from pg_event_trigger) + (select count(*) from pg_proc where proname like 'dts\\_%') + (select count(*) from pg_class where relname like 'dts\\_%')").await,
        [Some("0".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_the_destination_lacks_stops_the_stream_naming_it() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create table t (id int primary key, v text)"],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "nocapture",
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    // DDL made where no capture sees it (as with a non-superuser source role).
    exec(&src, "alter event trigger dts_ddl_capture disable; alter table t add column extra text; insert into t values (1, 'a', 'kept')").await;
    // The statement retry window (DTS "other issues"), shortened for the test.
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("PGSYNC_RETRY_SECONDS", "30,2")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("task \"nocapture\" stopped after retrying for 2 s"),
        "{}",
        crate::support::cli::text(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        crate::support::cli::text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "table public.t on the destination has no column \"extra\", which the source sends"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: add the column on the destination"),
        "{err}"
    );
    // Nothing was applied past it: the row is not on the destination.
    let dst = connect(&pair.destination, "app").await;
    assert_eq!(
        column(&dst, "select count(*) from t").await,
        [Some("0".to_owned())]
    );
    // After fixing the destination, the stream resumes at that transaction.
    exec(&dst, "alter table t add column extra text").await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(
        column(&dst, "select extra from t where id = 1").await,
        [Some("kept".to_owned())]
    );
    exec(&src, "alter event trigger dts_ddl_capture enable").await;
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_index_ddl_while_streaming_is_replayed() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table item (id int primary key, name text, code text);
                 insert into item select g, 'n' || g, 'c' || g from generate_series(1, 500) g;
                 create table part (id int primary key, v text) partition by range (id);
                 create table part_1 partition of part for values from (0) to (100);
                 insert into part select g, 'v' from generate_series(0, 99) g;",
            ],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "cic",
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "cic");
    // Each runs alone, outside a transaction block, as these forms must.
    let statements = [
        "create index concurrently item_name on item (name)",
        "insert into item values (501, 'late', 'c501')",
        "create unique index concurrently if not exists item_code on item (code)",
        "update item set name = 'renamed' where id = 1",
        "drop index concurrently item_name",
        // Captured from 17 on, and not replayed.
        "reindex index concurrently item_code",
        "insert into item values (502, 'later', 'c502')",
        // A partition's own index.
        "create index concurrently part_1_v on part_1 (v)",
        "update part set v = 'after' where id = 5",
    ];
    for sql in statements {
        exec(&src, sql).await;
    }
    assert_converges(&src, &dst, 60, "after the concurrent DDL").await;
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines.into_iter().filter(|l| !l.contains("dts_")).collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while strip(fingerprint(&dst).await) != strip(fingerprint(&src).await)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    assert_eq!(
        column(
            &dst,
            "select string_agg(c.relname || ' ' || i.indisvalid || ' ' || i.indisunique, ', ' order by c.relname)
               from pg_index i join pg_class c on c.oid = i.indexrelid
              where i.indrelid = 'item'::regclass"
        )
        .await,
        [Some("item_code true true, item_pkey true true".to_owned())]
    );
    stop_gracefully(&ws, &mut apply, "cic");
    let log = std::fs::read_to_string(ws.log("cic", "err")).unwrap_or_default();
    assert!(!log.contains("error"), "{log}");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// The DDL forms of issue 3, each issued from inside a function (its text
/// is not in `current_query()`): replayed from the shapes and definitions
/// the event trigger records, leaving identical fingerprints and rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_issued_from_functions_is_replayed() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    pair.source
        .psql(
            "app",
            &["-c", "create function run_ddl(q text) returns void language plpgsql as $f$ begin execute q; end $f$;"],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "fn_ddl",
        // A schema that does not exist yet is selected too: CREATE SCHEMA
        // and what is created in it are replayed.
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}\n  schema \"later\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "fn_ddl");
    let statements = [
        "alter table person add column age int",
        "alter table person add column token float8 default random()",
        "alter table person alter column age set default 18",
        "alter table person alter column name drop not null",
        "alter table person alter column name set not null",
        "alter table person rename column name to full_name",
        "alter table person alter column age type bigint",
        "alter table person add constraint age_positive check (age > 0)",
        "alter table person alter column age drop default",
        "create table orders (id bigserial primary key, person_id int references person(id), total numeric(10,2) default 0)",
        "alter table orders rename to purchases",
        "create index purchases_person on purchases (person_id)",
        "drop index purchases_person",
        "alter table person drop column age",
        "create view adults as select id, full_name from person",
        "create or replace view adults as select id, full_name, mood from person",
        "create sequence counter increment by 5",
        "alter sequence counter increment by 7",
        "alter type mood add value 'happy'",
        "create type pair as (a int, b text)",
        "create domain positive as int check (value > 0)",
        "create function twice(x int) returns int language sql as 'select 2 * x'",
        "alter function twice(int) rename to double_it",
        "create view kept_view as select id from person",
        "alter view kept_view rename to renamed_view",
        "alter type pair rename to couple",
        "create schema later",
        "create table later.t (id int primary key, v text)",
        "drop view adults",
        "drop table doomed",
        "drop sequence counter",
    ];
    for sql in statements {
        exec(&src, &format!("select run_ddl($q${sql}$q$)")).await;
        // DML between the DDL, in the same shape.
        exec(&src, "update person set mood = 'sad' where id % 7 = 0").await;
    }
    exec(
        &src,
        "insert into purchases (person_id, total) values (1, 2.5)",
    )
    .await;
    exec(
        &src,
        "insert into person (id, full_name, mood) values (5000, 'late', 'happy')",
    )
    .await;
    exec(&src, "insert into later.t values (1, 'in a new schema')").await;
    // DDL from a function and DML using it, in one transaction.
    exec(
        &src,
        "begin; select run_ddl($q$alter table person add column late text default 'x'$q$); \
         update person set late = 'y' where id < 3; \
         insert into person (id, full_name, late) values (5001, 'later', 'z'); commit",
    )
    .await;
    exec(&src, "update person set mood = 'happy' where id < 5").await;
    assert_converges(&src, &dst, 60, "after DDL from functions").await;
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.contains("dts_") && !l.contains("run_ddl"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while strip(fingerprint(&dst).await) != strip(fingerprint(&src).await)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    let log = std::fs::read_to_string(ws.log("fn_ddl", "err")).unwrap_or_default();
    let _ = apply.kill();
    let _ = apply.wait();
    assert!(!log.contains("error"), "{log}");
}

/// Two clusters with `create table t (id int primary key, v TYPE)` on the
/// source, task `task` (whole schema `public`) applied and caught up.
async fn caught_up(task: &str, v_type: &str) -> (Pair, Client, Client, Workspace) {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                &format!("create table t (id int primary key, v {v_type})"),
            ],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        task,
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    (pair, src, dst, ws)
}

/// Runs apply with a 2 s statement retry window, asserts that it stops
/// (exit 1) with each of `words` in its output.
fn apply_stops_saying(ws: &Workspace, words: &[&str]) {
    let out = ws
        .command(&["apply", "--auto-approve", "--exit-when-caught-up"])
        .env("PGSYNC_RETRY_SECONDS", "30,2")
        .output()
        .unwrap();
    let all = crate::support::cli::text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for w in words {
        assert!(all.contains(w), "want {w:?} in:\n{all}");
    }
}

/// A statement the destination refuses is retried within
/// `retry.other_minutes`, then the task stops naming the statement and the
/// error, without applying anything past it; once the destination is
/// fixed, apply resumes at that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_statement_the_destination_refuses_stops_the_task_without_skipping_it() {
    let (_pair, src, dst, ws) = caught_up("refused", "text").await;
    // Someone made the same table on the destination by hand.
    exec(&dst, "create table clash (id int)").await;
    exec(&src, "begin; create table clash (id int primary key); insert into t values (1, 'after the ddl'); commit").await;
    apply_stops_saying(
        &ws,
        &[
            "task \"refused\" stopped after retrying for 2 s",
            "replay `create table clash (id int primary key)`",
            "relation \"clash\" already exists",
            "hint: fix the destination (the error names the table and statement), then run `pgsync apply` again; the stream resumes at this transaction",
        ],
    );
    // Nothing of that transaction was applied.
    assert_eq!(
        column(&dst, "select count(*)::text from t").await,
        [Some("0".to_owned())]
    );
    exec(&dst, "drop table clash").await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(
        column(&dst, "select v from t").await,
        [Some("after the ddl".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// A row the destination rejects (a constraint added there by hand) stops
/// the task naming the table, the row's key and the error, and nothing past
/// it is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_row_is_named_by_its_key() {
    let (_pair, src, dst, ws) = caught_up("rejected", "int").await;
    exec(&dst, "alter table t add constraint small check (v < 100)").await;
    exec(&src, "insert into t values (1, 1)").await;
    exec(&src, "insert into t values (7, 500)").await;
    exec(&src, "insert into t values (8, 2)").await;
    apply_stops_saying(
        &ws,
        &[
            "insert of the row with key (id)=(7) on public.t",
            "violates check constraint \"small\"",
        ],
    );
    // The transaction before it is applied, nothing from it on.
    assert_eq!(
        column(&dst, "select string_agg(id::text, ',') from t").await,
        [Some("1".to_owned())]
    );
}
