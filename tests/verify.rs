//! `pgsync verify`: equal after a sync, every kind of tampering found and
//! narrowed to the right key range and rows, no false mismatch while apply
//! streams under a write load, and the JSON document.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::cli::{Workspace, expect_exit, stop_gracefully, text};
use crate::support::pg::{Pair, column, connect, exec};
use crate::support::sync::assert_converges;

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

const SHAPES: &str = "
create table big (id int8 primary key, name text not null, amount numeric(12,2), doc jsonb,
                  doubled int8 generated always as (id * 2) stored);
insert into big (id, name, amount, doc)
  select g, 'name ' || g, g * 1.25, jsonb_build_object('g', g) from generate_series(1, 100000) g;
create table pairs (a char(4), b int, v text, primary key (a, b));
insert into pairs select 'k' || (g % 50), g, md5(g::text) from generate_series(1, 2000) g;
create table bag (x int, y text);
alter table bag replica identity full;
insert into bag select g % 10, 'v' from generate_series(1, 300) g;
create table measurement (id int, at date, v float8, primary key (id, at)) partition by range (at);
create table measurement_2024 partition of measurement for values from ('2024-01-01') to ('2025-01-01');
create table measurement_2025 partition of measurement for values from ('2025-01-01') to ('2026-01-01');
insert into measurement select g, date '2024-06-01' + (g % 400), g / 3.0 from generate_series(1, 5000) g;
create table words (w text collate \"und-x-icu\" primary key, n int);
insert into words select 'w' || (array['A', 'a', 'ä'])[g % 3 + 1] || g, g from generate_series(1, 20000) g;
create table gone (id int primary key);
insert into gone values (1), (2), (3);
";

fn json(out: &std::process::Output, code: i32) -> Value {
    let stdout = expect_exit(out, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tasks"][0]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {report:#}"))
}

fn keys(list: &Value) -> Vec<Vec<String>> {
    list.as_array()
        .expect("a list of keys")
        .iter()
        .map(|k| {
            k.as_array()
                .expect("a key")
                .iter()
                .map(|v| v.as_str().expect("text").to_owned())
                .collect()
        })
        .collect()
}

/// Whether the range `[lower, upper)` of a one-column integer key holds `key`.
fn holds(range: &Value, key: i64) -> bool {
    let bound = |v: &Value| {
        v.as_array()
            .map(|a| a[0].as_str().unwrap().parse::<i64>().unwrap())
    };
    bound(&range["lower"]).is_none_or(|lo| lo <= key)
        && bound(&range["upper"]).is_none_or(|hi| key < hi)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_each_tampered_row_in_its_range() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SHAPES]).unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "v", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );

    // Equal after the sync: every table ok, partitions compared through their root.
    let out = expect_exit(&ws.run(&["verify"]), 0);
    for line in [
        "ok        public.big: 100000 rows",
        "ok        public.pairs: 2000 rows",
        "ok        public.bag: 300 rows",
        "ok        public.measurement: 5000 rows",
        "ok        public.gone: 3 rows",
        "ok        public.words: 20000 rows",
        "Verified: 6 tables, 6 ok, 0 MISMATCH; 127303 source rows compared in",
        "rows/s).",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("measurement_2024"), "{out}");

    let report = json(&ws.run(&["verify", "--json"]), 0);
    assert_eq!(report["result"], "ok");
    assert_eq!(report["summary"]["tables"], 6);
    assert_eq!(report["summary"]["mismatch"], 0);
    assert_eq!(report["summary"]["source_rows"], 127_303);
    assert!(report["summary"]["rows_per_second"].as_f64().unwrap() > 0.0);
    let task = &report["tasks"][0];
    assert_eq!(task["task"], "v");
    assert_eq!(task["streaming"], false, "apply is not running");
    assert_eq!(task["rounds"], 1);
    assert!(task["source_lsn"].as_str().unwrap().contains('/'));
    assert!(task["destination_applied_lsn"].as_str().is_some());
    assert_eq!(
        table(&report, "public.big")["key"],
        serde_json::json!(["id"])
    );
    assert_eq!(table(&report, "public.big")["key_kind"], "primary_key");
    assert_eq!(
        table(&report, "public.pairs")["key"],
        serde_json::json!(["a", "b"])
    );
    assert_eq!(table(&report, "public.bag")["key_kind"], "none");
    assert_eq!(
        table(&report, "public.measurement")["destination_rows"],
        5000
    );
    for t in task["tables"].as_array().unwrap() {
        assert_eq!(t["status"], "ok", "{t:#}");
        assert_eq!(t["ranges"], serde_json::json!([]));
    }

    // Tamper with the destination: a row deleted, one changed, one extra,
    // in the big table; one change each elsewhere (a duplicate in the keyless one).
    let dst = connect(&pair.destination, "app").await;
    exec(
        &dst,
        "delete from big where id = 4242;
         update big set name = 'tampered' where id = 50001;
         insert into big (id, name, amount, doc) values (100500, 'extra', 1, '{}');
         update pairs set v = 'changed' where a = 'k7' and b = 7;
         insert into bag values (3, 'v');
         update measurement set v = -1 where id = 10;
         update words set n = -1 where w = 'wa1';
         drop table gone;",
    )
    .await;

    let report = json(&ws.run(&["verify", "--json"]), 2);
    assert_eq!(report["result"], "mismatch");
    assert_eq!(report["summary"]["mismatch"], 6);
    assert_eq!(
        table(&report, "public.words")["ranges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gone = table(&report, "public.gone");
    assert_eq!(gone["status"], "mismatch");
    assert_eq!(gone["note"], "the table does not exist on the destination");
    assert_eq!(gone["source_rows"], 3);
    let big = table(&report, "public.big");
    assert_eq!(big["status"], "mismatch");
    assert_eq!(big["source_rows"], 100_000);
    assert_eq!(big["destination_rows"], 100_000);
    let ranges = big["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "{big:#}");
    for key in [4242, 50001, 100_500] {
        let r: Vec<&Value> = ranges.iter().filter(|r| holds(r, key)).collect();
        assert_eq!(
            r.len(),
            1,
            "id {key} is in exactly one named range: {big:#}"
        );
        let rows = r[0]["source_rows"].as_i64().unwrap();
        assert!(rows <= 64, "the range was narrowed: {big:#}");
    }
    assert_eq!(
        table(&report, "public.pairs")["ranges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(big["rows"].is_null(), "rows only with --rows");

    let report = json(&ws.run(&["verify", "--rows", "--json"]), 2);
    let rows = &table(&report, "public.big")["rows"];
    assert_eq!(keys(&rows["missing"]), [["4242"]]);
    assert_eq!(keys(&rows["extra"]), [["100500"]]);
    assert_eq!(keys(&rows["different"]), [["50001"]]);
    assert_eq!(rows["truncated"], false);
    let rows = &table(&report, "public.pairs")["rows"];
    assert_eq!(keys(&rows["different"]), [["k7", "7"]]);
    assert_eq!(keys(&rows["missing"]).len() + keys(&rows["extra"]).len(), 0);
    let rows = &table(&report, "public.bag")["rows"];
    assert_eq!(keys(&rows["extra"]), [["(3,v)"]]);
    assert_eq!(keys(&rows["missing"]).len(), 0);
    let rows = &table(&report, "public.words")["rows"];
    assert_eq!(keys(&rows["different"]), [["wa1"]]);
    let rows = &table(&report, "public.measurement")["rows"];
    assert_eq!(keys(&rows["different"]), [["10", "2024-06-11"]]);

    let out = expect_exit(&ws.run(&["verify", "--rows"]), 2);
    eprintln!("{out}");
    for line in [
        "MISMATCH  public.big: source 100000 rows, destination 100000 rows",
        "missing on destination (1): id 4242",
        "extra on destination (1): id 100500",
        "different (1): id 50001",
        "different (1): (a, b) (k7, 7)",
        "extra on destination (1): row (3,v)",
        "MISMATCH  public.gone: source 3 rows, destination 0 rows; the table does not exist on the destination",
        "Differences found: 6 tables, 0 ok, 6 MISMATCH;",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("id in [") && l.contains(" rows, destination ")),
        "no range line in:\n{out}"
    );

    // The portable md5 hash finds the same rows.
    let desired = pgsync::config::load_dir(ws.path(), &pgsync::config::Inputs::from_process(&[]))
        .expect("config");
    let options = pgsync::verify::VerifyOptions {
        rows: true,
        hash: Some(pgsync::verify::sql::HashKind::Md5),
        ..Default::default()
    };
    let report = pgsync::verify::verify(&desired, &options, &|_| {})
        .await
        .expect("verify with md5");
    let big = report.tasks[0]
        .tables
        .iter()
        .find(|t| t.table == "public.big")
        .unwrap();
    let rows = big.rows.as_ref().unwrap();
    assert_eq!(
        (&rows.missing, &rows.extra, &rows.different),
        (
            &vec![vec!["4242".to_owned()]],
            &vec![vec!["100500".to_owned()]],
            &vec![vec!["50001".to_owned()]]
        )
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

/// A source writer: single-row updates and appends on accounts 1..=10000,
/// as fast as one session goes (with a short pause), until stopped.
fn start_writer(client: tokio_postgres::Client) -> (Arc<AtomicBool>, Arc<AtomicU64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
    tokio::spawn(async move {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while !s.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 10_000 + 1;
            let sql = if x.is_multiple_of(10) {
                format!(
                    "begin; delete from account where id = {id};
                     insert into account values ({id}, 0, 'again'); commit"
                )
            } else {
                format!(
                    "begin; update account set balance = balance + 1, note = md5(random()::text) where id = {id};
                     insert into ledger (account, delta) values ({id}, 1); commit"
                )
            };
            client.batch_execute(&sql).await.expect("writer");
            d.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    (stop, done)
}

async fn run_verify(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let mut cmd = ws.command(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run pgsync"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_while_apply_streams_under_load_has_no_false_mismatch() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table account (id int primary key, balance int8 not null, note text);
                 insert into account select g, 0, 'n' from generate_series(1, 20000) g;
                 create table ledger (id bigserial primary key, account int not null,
                                      delta int not null, at timestamptz default now());",
            ],
        )
        .unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "load", BODY);
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "stream");
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    assert_converges(&src, &dst, 60, "after the initial sync").await;

    let (stop, done) = start_writer(connect(&pair.source, "app").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = done.load(Ordering::Relaxed);
    let out = run_verify(&ws, &["verify", "--json"]).await;
    let during = done.load(Ordering::Relaxed) - before;
    let report = json(&out, 0);
    assert!(
        during > 20,
        "the writer kept writing during verify ({during} transactions)"
    );
    assert_eq!(report["result"], "ok", "{report:#}");
    assert_eq!(report["tasks"][0]["streaming"], true);
    assert_eq!(report["summary"]["mismatch"], 0);
    eprintln!(
        "verify under load: {during} source transactions meanwhile, {} rounds, {} ranges unsettled\n{}",
        report["tasks"][0]["rounds"],
        report["summary"]["unsettled_ranges"],
        String::from_utf8_lossy(&out.stderr)
    );

    // A difference the stream did not make is found while it streams.
    exec(
        &dst,
        "update account set note = 'tampered' where id = 15000",
    )
    .await;
    let out = run_verify(&ws, &["verify", "--rows", "--json"]).await;
    let report = json(&out, 2);
    let account = table(&report, "public.account");
    assert_eq!(account["status"], "mismatch", "{account:#}");
    let ranges = account["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{account:#}");
    assert!(holds(&ranges[0], 15000), "{account:#}");
    assert_eq!(keys(&account["rows"]["different"]), [["15000"]]);
    assert_eq!(keys(&account["rows"]["missing"]).len(), 0);
    assert_eq!(keys(&account["rows"]["extra"]).len(), 0);
    assert_eq!(table(&report, "public.ledger")["status"], "ok");

    stop.store(true, Ordering::Relaxed);
    stop_gracefully(&ws, &mut apply, "stream");
    assert_eq!(
        column(&src, "select count(*) > 0 from ledger").await,
        [Some("t".to_owned())]
    );
}
