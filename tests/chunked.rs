//! Chunked copies (issue 6): large tables cut into key ranges (or page
//! ranges without an integer key) copied in parallel under one snapshot,
//! with `--jobs 1` and with several jobs; routes (filters, column lists,
//! renames) per chunk; progress lines and `pgsync status` numbers.
//!
//! Chunks are made small with `PGSYNC_CHUNK_BYTES` so that tables of a few
//! MB are cut into a dozen chunks.

use crate::support::cli::{Workspace, expect_exit, text};
use crate::support::pg::{Pair, column, connect, exec};
use crate::support::sync::assert_converges;

/// About 12 chunks for `big` (≈1.6 MB), 1 for `small`.
pub const CHUNK_BYTES: &str = "131072";

const SETUP: &str = "
create table big (id bigint primary key, v int not null, pad text);
insert into big select g, g % 1000, md5(g::text) from generate_series(1, 20000) g;
create table small (id int primary key, v int);
insert into small select g, g from generate_series(1, 100) g;
-- No integer key: a text key (page ranges).
create table notes (k text primary key, body text);
insert into notes select 'k' || g, repeat(md5(g::text), 2) from generate_series(1, 12000) g;
-- No key at all: REPLICA IDENTITY FULL (page ranges).
create table log (at int, msg text);
alter table log replica identity full;
insert into log select g, md5(g::text) from generate_series(1, 12000) g;
analyze;
";

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

/// Writes touching every chunked table, early and late key ranges, rows
/// moving between chunks.
const WRITES: &str = "
update big set v = v + 1 where id % 97 = 0;
update big set id = id + 100000 where id in (3, 19999);
delete from big where id in (5, 10000, 19990);
insert into big select g, 1, 'new' from generate_series(20001, 20100) g;
update notes set body = 'changed' where k in ('k1', 'k11999');
delete from notes where k = 'k7';
insert into notes values ('zz', 'new');
update log set msg = 'changed' where at in (1, 11999);
delete from log where at = 6000;
insert into log values (12001, 'new');
";

async fn copies_equal(jobs: &str) {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "chunks", BODY);
    let out = ws
        .command(&[
            "apply",
            "--auto-approve",
            "--exit-when-caught-up",
            "--jobs",
            jobs,
        ])
        .env("PGSYNC_CHUNK_BYTES", CHUNK_BYTES)
        .output()
        .unwrap();
    expect_exit(&out, 0);
    let log = text(&out);
    assert!(log.contains(&format!("{jobs} at a time")), "{log}");
    // Page ranges need TID range scans (PostgreSQL 14): on 13 the tables
    // without an integer key are copied whole.
    let pages = crate::support::pg::pair_majors().0 >= 14;
    let chunked: &[&str] = if pages {
        &["public.big", "public.notes", "public.log"]
    } else {
        &["public.big"]
    };
    for table in chunked {
        assert!(
            log.contains(&format!("progress table={table} chunk=")),
            "{table} was not chunked:\n{log}"
        );
        assert!(
            log.contains(&format!("progress table={table} copied rows=")),
            "{log}"
        );
    }
    assert!(
        log.contains("progress table=public.small copied rows=100 "),
        "{log}"
    );
    assert!(log.contains("progress overall tables=4/4 rows="), "{log}");
    assert_converges(&src, &dst, 30, &format!("after the copy (--jobs {jobs})")).await;
    // The cuts are recorded: key ranges for `big`, pages for the others.
    let state = expect_exit(&ws.run(&["state", "show", "task.chunks"]), 0);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let chunks = &state["chunks"];
    assert_eq!(chunks["public.big"]["split"]["by"], "key", "{state:#}");
    assert_eq!(chunks["public.big"]["split"]["column"], "id");
    assert_eq!(chunks["public.big"]["split"]["resumable"], true);
    if pages {
        assert_eq!(chunks["public.notes"]["split"]["by"], "pages");
        assert_eq!(chunks["public.log"]["split"]["by"], "pages");
    } else {
        assert!(chunks.get("public.notes").is_none(), "{state:#}");
    }
    assert!(chunks.get("public.small").is_none(), "{state:#}");
    let n = chunks["public.big"]["split"]["bounds"]
        .as_array()
        .unwrap()
        .len();
    assert!((5..=30).contains(&n), "{n} bounds: {state:#}");
    // The stream after a chunked copy.
    exec(&src, WRITES).await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_converges(&src, &dst, 30, &format!("streaming (--jobs {jobs})")).await;
    // `pgsync status` shows the per-table numbers.
    let status = expect_exit(&ws.run(&["status", "--json"]), 0);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let big = &status["tasks"]["chunks"]["tables"]["public.big"];
    assert_eq!(big["state"], "copied", "{status:#}");
    assert_eq!(big["rows"], 20000, "{status:#}");
    assert_eq!(big["chunks"], n + 1, "{status:#}");
    assert_eq!(big["chunks_done"], n + 1, "{status:#}");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_tables_copy_equal_with_one_job() {
    copies_equal("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_tables_copy_equal_with_several_jobs() {
    copies_equal("4").await;
}

/// A chunked table with a `where` filter, a column list, a column rename
/// and a table rename: every chunk copies exactly the filtered rows and
/// the selected columns, and the stream keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_routes_keep_filters_and_column_lists() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table orders (id int primary key, amount int not null, note text, secret text);
                 insert into orders select g, g % 50 - 10, md5(g::text), 's' || g
                   from generate_series(1, 30000) g;
                 analyze;",
            ],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let body = r#"  sync_types = ["schema", "full", "incremental"]
  table "public.orders" {
    rename     = "public.purchases"
    columns    = ["id", "amount", "note"]
    column_map = { note = "remark" }
    where      = "amount > 0"
  }"#;
    let ws = Workspace::new(&pair.source, &pair.destination, "routed", body);
    let expected =
        "select id || '|' || amount || '|' || note from orders where amount > 0 order by id";
    let actual = "select id || '|' || amount || '|' || remark from purchases order by id";
    let out = ws
        .command(&[
            "apply",
            "--auto-approve",
            "--exit-when-caught-up",
            "--jobs",
            "3",
        ])
        .env("PGSYNC_CHUNK_BYTES", CHUNK_BYTES)
        .output()
        .unwrap();
    expect_exit(&out, 0);
    assert!(
        text(&out).contains("progress table=public.orders chunk="),
        "{}",
        text(&out)
    );
    let want = column(&src, expected).await;
    assert!(want.len() > 10000);
    assert_eq!(column(&dst, actual).await, want, "after the copy");
    assert_eq!(
        column(
            &dst,
            "select string_agg(attname, ',' order by attnum) from pg_attribute \
             where attrelid = 'purchases'::regclass and attnum > 0 and not attisdropped"
        )
        .await,
        [Some("id,amount,remark".to_owned())]
    );
    exec(
        &src,
        "update orders set amount = 5 where id in (10, 29990); \
         update orders set amount = -1 where id in (11, 29991); \
         insert into orders values (40000, 3, 'new', 's'), (40001, -3, 'out', 's');",
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let want = column(&src, expected).await;
        if column(&dst, actual).await == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "streaming differs");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `conflicting_tables = "ignore"` per chunk: every chunk goes through its
/// staging table and `on conflict do nothing`, so destination rows whose
/// key exists are kept in every key range, and columns the destination
/// lacks are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_copies_keep_existing_rows_when_conflicts_are_ignored() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, a text, c text);
                 insert into t select g, md5(g::text), repeat('c', 40) from generate_series(1, 20000) g;
                 analyze;",
            ],
        )
        .unwrap();
    pair.destination
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, a text);
                 insert into t values (1, 'kept'), (10000, 'kept'), (20000, 'kept'), (30000, 'dst only');",
            ],
        )
        .unwrap();
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "merge",
        "  conflicting_tables = \"ignore\"\n  table \"public.t\" {}",
    );
    let out = ws
        .command(&[
            "apply",
            "--auto-approve",
            "--exit-when-caught-up",
            "--jobs",
            "2",
        ])
        .env("PGSYNC_CHUNK_BYTES", CHUNK_BYTES)
        .output()
        .unwrap();
    expect_exit(&out, 0);
    let log = text(&out);
    assert!(log.contains("progress table=public.t chunk="), "{log}");
    assert!(
        log.contains("public.t: the existing destination table lacks column(s) c; their values are not copied (conflicting_tables = \"ignore\")"),
        "{log}"
    );
    assert_eq!(
        column(
            &dst,
            "select count(*) || ' ' || count(*) filter (where a = 'kept') || ' ' || \
             count(*) filter (where a = md5(id::text)) from t"
        )
        .await,
        [Some("20001 3 19997".to_owned())]
    );
}
