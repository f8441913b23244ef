//! Scenario runner: every file of `../shared/scenarios/` (or
//! `$PGSYNC_SCENARIOS`) and of `testdata/scenarios/` is one test.
//!
//! A scenario file has the sections `-- source-setup:`, `-- during-sync:`,
//! `-- expect:` and `-- why:` (see `../shared/scenarios/README.md`). Per
//! scenario: two throwaway clusters (the source gets the server settings
//! the file asks for), the setup on the source, `pgsync apply
//! --auto-approve` in the background until it streams, the during-sync
//! script on the source (one `psql -f`, so transactions and savepoints keep
//! their meaning; the initial sync copies tables of more than 64 kB in
//! chunks, with `--jobs 1` for odd scenario numbers and `--jobs 3` for even
//! ones), a wait until the destination's progress row passes the
//! source's WAL position, SIGTERM, a second `apply --exit-when-caught-up`
//! (a restart must neither lose nor repeat anything), then every expect
//! query on both sides, compared as text.
//!
//! Conventions read from a file:
//! - `bodies/NNN-name.hcl` next to it: the task's selection instead of
//!   `schema "public" {}`;
//! - `-- server-setting: name = value` header lines, and `ALTER SYSTEM SET`
//!   statements in the setup, become `postgresql.conf` lines of the source;
//! - in the expect section, a comment `-- source only: QUERY; expected V`
//!   or `-- destination only: QUERY; expected V` runs on one side and
//!   compares its single value with `V`.
//!
//! A scenario that needs a feature pgsync documents as not built yet is
//! declared with an [`Expect`] other than `Pass`; its test then asserts the
//! documented limitation exactly (the refusal message, or that only the DDL
//! pgsync declares unsupported is missing) and prints `SCENARIO NNN NOT YET
//! SUPPORTED: reason`. If the feature starts working the scenario simply
//! passes. Every test prints `SCENARIO NNN PASS` / `FAILED` / `NOT YET
//! SUPPORTED` (see them with `-- --nocapture`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use pgsync::cluster::LocalCluster;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::cli::{Workspace, sigterm};
use crate::support::pg::{connect, start_destination, start_source};

const TASK: &str = "scenario";
const SYNC_TYPES: &str = "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n";
const DEFAULT_SELECTION: &str = "  schema \"public\" {}\n";
/// Upper bound for each wait (initial sync, catch-up, the second apply).
const WAIT: Duration = Duration::from_secs(90);

/// What a scenario's test accepts besides "every expect query is equal".
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Every expect query identical on both sides, pgsync never fails.
    Pass,
    /// Equal results, or pgsync refuses to start and its message names
    /// every one of these tables (an outcome the scenario header accepts).
    PassOrRefuseNaming(&'static [&'static str]),
    /// The selection uses an attribute pgsync rejects with "`attr` ... is
    /// not supported yet" (README, Status).
    NotSupportedAttribute(&'static str),
    /// The setup creates tables without a usable replica identity, which
    /// the precheck refuses by name (issue 4: "the precheck refuses them by
    /// name unless REPLICA IDENTITY FULL"). Passes when pgsync refuses naming
    /// exactly these tables, and the scenario then passes in full once they
    /// are given REPLICA IDENTITY FULL.
    RefuseThenPassWithFullIdentity(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
enum Dir {
    Shared,
    Own,
}

impl Dir {
    fn path(self) -> Option<PathBuf> {
        match self {
            Dir::Shared => {
                let dir = std::env::var_os("PGSYNC_SCENARIOS")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scenarios")
                    });
                if dir.is_dir() {
                    Some(dir)
                } else {
                    println!(
                        "shared scenarios not found at {}: set PGSYNC_SCENARIOS to the scenarios folder; skipping",
                        dir.display()
                    );
                    None
                }
            }
            Dir::Own => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios")),
        }
    }
}

macro_rules! scenarios {
    ($list:ident, $dir:expr; $($test:ident: $file:literal => $expect:expr,)*) => {
        /// Every scenario file that has a test.
        const $list: &[&str] = &[$($file),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_named($dir, $file, $expect).await;
            }
        )*
    };
}

scenarios! { SHARED, Dir::Shared;
    s001_toast_unchanged: "001-toast-unchanged-default-identity" => Expect::Pass,
    s004_tables_without_key: "004-tables-without-key"
        => Expect::PassOrRefuseNaming(&["event_log", "blackhole", "lazy_key"]),
    s006_generated_columns: "006-generated-columns"
        => Expect::RefuseThenPassWithFullIdentity(&["beacon"]),
    s008_partitioned_tables: "008-partitioned-tables"
        => Expect::RefuseThenPassWithFullIdentity(&["reading_2024"]),
    s011_numeric_nan_infinity: "011-numeric-nan-infinity" => Expect::Pass,
    s014_timestamptz_timezone: "014-timestamptz-session-timezone" => Expect::Pass,
    s017_text_escaping: "017-text-escaping" => Expect::Pass,
    s020_dropped_columns: "020-dropped-columns-attnum-gaps" => Expect::Pass,
    s023_ddl_and_dml: "023-ddl-and-dml-same-transaction" => Expect::Pass,
    s025_truncate_cascade: "025-truncate-cascade-restart-identity" => Expect::Pass,
    s027_large_transaction: "027-large-transaction-with-savepoints" => Expect::Pass,
    s036_row_filter_moves: "036-row-filter-moves" => Expect::NotSupportedAttribute("where"),
}

scenarios! { OWN, Dir::Own;
    s101_primary_key_update: "101-primary-key-update" => Expect::Pass,
    s102_identity_full_nulls: "102-replica-identity-full-nulls" => Expect::Pass,
    s103_interleaved_commits: "103-interleaved-commit-order" => Expect::Pass,
    s104_quoted_names: "104-quoted-non-ascii-names" => Expect::Pass,
    s105_value_fidelity: "105-value-fidelity" => Expect::Pass,
}

/// A new scenario file must get a test here, or it would be skipped silently.
#[test]
fn every_scenario_file_has_a_test() {
    for (dir, list) in [(Dir::Shared, SHARED), (Dir::Own, OWN)] {
        let Some(path) = dir.path() else { continue };
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&path).expect("read scenarios dir") {
            let p = entry.expect("dir entry").path();
            if p.extension().is_some_and(|e| e == "sql") {
                let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                if !list.contains(&stem.as_str()) {
                    missing.push(stem);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "scenario files without a test in tests/scenarios.rs ({}): {missing:?}",
            path.display()
        );
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Debug, Default, Clone)]
struct Scenario {
    id: String,
    header: String,
    setup: String,
    during: String,
    expect: String,
    body: String,
    settings: Vec<String>,
}

fn load(dir: &Path, name: &str) -> Scenario {
    let path = dir.join(format!("{name}.sql"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut s = Scenario {
        id: name.split('-').next().unwrap_or(name).to_owned(),
        ..Default::default()
    };
    let mut section = "header";
    for line in text.lines() {
        let marker = line.trim();
        let next = match marker {
            "-- source-setup:" => Some("setup"),
            "-- during-sync:" => Some("during"),
            "-- expect:" => Some("expect"),
            "-- why:" => Some("why"),
            _ => None,
        };
        if let Some(n) = next {
            section = n;
            continue;
        }
        let target = match section {
            "header" => &mut s.header,
            "setup" => &mut s.setup,
            "during" => &mut s.during,
            "expect" => &mut s.expect,
            _ => continue,
        };
        target.push_str(line);
        target.push('\n');
    }
    assert!(
        !s.setup.is_empty() && !s.expect.is_empty(),
        "{}: missing `-- source-setup:` or `-- expect:` section",
        path.display()
    );
    for line in s.header.lines() {
        if let Some(v) = line.trim().strip_prefix("-- server-setting:") {
            s.settings.push(v.trim().to_owned());
        }
    }
    for line in s.setup.lines() {
        let l = line.trim();
        if let Some(head) = l.get(..16)
            && head.eq_ignore_ascii_case("alter system set")
        {
            let v = l[16..].trim().trim_end_matches(';').trim();
            s.settings.push(v.to_owned());
        }
    }
    let body = dir.join("bodies").join(format!("{name}.hcl"));
    let selection = std::fs::read_to_string(&body).unwrap_or_else(|_| DEFAULT_SELECTION.into());
    s.body = format!("{SYNC_TYPES}  {}\n", selection.trim());
    s
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Both,
    Source,
    Destination,
}

#[derive(Debug)]
struct Check {
    side: Side,
    sql: String,
    /// For one-side checks: the single value expected.
    expected: Option<String>,
}

/// Splits the expect section into statements (quotes, dollar quotes and
/// comments respected) and one-side comment checks.
fn checks(expect: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = expect.chars().collect();
    let mut i = 0;
    let flush = |cur: &mut String, out: &mut Vec<Check>| {
        let sql = cur.trim().to_owned();
        if !sql.is_empty() {
            out.push(Check {
                side: Side::Both,
                sql,
                expected: None,
            });
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                let comment: String = chars[i + 2..end].iter().collect();
                if let Some(check) = one_side_check(comment.trim()) {
                    out.push(check);
                }
                cur.push(' ');
                i = end;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let rest: String = chars[i..].iter().collect();
                let len = rest.find("*/").map_or(rest.len(), |p| p + 2);
                i += rest[..len].chars().count();
                cur.push(' ');
            }
            '\'' | '"' => {
                let escapes = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && (i < 2 || !chars[i - 2].is_alphanumeric());
                cur.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    cur.push(d);
                    i += 1;
                    if escapes && d == '\\' && i < chars.len() {
                        cur.push(chars[i]);
                        i += 1;
                    } else if d == c {
                        if chars.get(i) == Some(&c) {
                            cur.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            '$' => {
                let rest: String = chars[i..].iter().collect();
                let tag_len = rest[1..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .map(|p| p + 1);
                match tag_len {
                    Some(n) if rest[n..].starts_with('$') => {
                        let tag = &rest[..=n];
                        let body_end = rest[tag.len()..]
                            .find(tag)
                            .map_or(rest.len(), |p| tag.len() + p + tag.len());
                        cur.push_str(&rest[..body_end]);
                        i += rest[..body_end].chars().count();
                    }
                    _ => {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
            ';' => {
                flush(&mut cur, &mut out);
                i += 1;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// `source only: QUERY; expected V` / `destination only: QUERY; expected V`.
fn one_side_check(comment: &str) -> Option<Check> {
    let lower = comment.to_lowercase();
    let (side, rest) = if lower.starts_with("source only:") {
        (Side::Source, &comment["source only:".len()..])
    } else if lower.starts_with("destination only:") {
        (Side::Destination, &comment["destination only:".len()..])
    } else {
        return None;
    };
    let (sql, tail) = rest.rsplit_once(';').unwrap_or((rest, ""));
    let tail = tail.trim();
    let expected = tail
        .strip_prefix("expected")
        .map(|v| v.trim().trim_end_matches('.').to_owned());
    Some(Check {
        side,
        sql: sql.trim().to_owned(),
        expected,
    })
}

// ---------------------------------------------------------------- running

/// Kills the background apply if the test ends early.
struct Bg(Option<Child>);

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What happened to one scenario.
#[derive(Debug, Default)]
struct Run {
    /// The first apply ended before streaming: its output.
    refused: Option<String>,
    /// The during-sync script failed on the source.
    source_failed: Option<String>,
    /// pgsync failures after streaming started (exit codes and logs).
    apply_errors: Vec<String>,
    /// The `error:` messages (up to their `hint:`) pgsync printed then.
    errors: Vec<String>,
    /// Expect queries whose results differ, fully described.
    mismatches: Vec<String>,
    /// Tables of `public` and their columns (`name type, …`) on each side,
    /// for the DDL verdict.
    source_tables: BTreeMap<String, String>,
    destination_tables: BTreeMap<String, String>,
}

fn start_clusters(settings: &[String]) -> (LocalCluster, LocalCluster) {
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    // Each side's server binaries come from the environment (docs/testing.md).
    let (source, destination) = std::thread::scope(|s| {
        let src = s.spawn(|| start_source(&settings));
        let dst = s.spawn(|| start_destination(&[]));
        (src.join().unwrap(), dst.join().unwrap())
    });
    for c in [&source, &destination] {
        c.psql("postgres", &["-c", "create database app"])
            .expect("create database app");
    }
    (source, destination)
}

fn logs(ws: &Workspace, tag: &str) -> String {
    let read = |which| std::fs::read_to_string(ws.log(tag, which)).unwrap_or_default();
    format!(
        "--- pgsync {tag} stdout\n{}--- pgsync {tag} stderr\n{}",
        tail(&read("out"), 4000),
        tail(&read("err"), 4000)
    )
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// pgsync's `error: …` messages in a log, each up to its `hint:` line.
fn error_messages(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in log.lines() {
        if let Some(e) = line.strip_prefix("error: ") {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            cur = Some(e.to_owned());
        } else if line.starts_with("hint:") || line.starts_with("task.") {
            if let Some(c) = cur.take() {
                out.push(c);
            }
        } else if let Some(c) = &mut cur {
            c.push('\n');
            c.push_str(line);
        }
    }
    out.extend(cur);
    out
}

fn phase(ws: &Workspace) -> Option<String> {
    let text = std::fs::read_to_string(ws.path().join(".pgsync/status.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["tasks"][TASK]["phase"].as_str().map(str::to_owned)
}

async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn first_value(client: &Client, sql: &str) -> Option<String> {
    match client.simple_query(sql).await {
        Ok(msgs) => msgs.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        }),
        Err(_) => None,
    }
}

/// Rows as text (`None` for NULL), or the error message.
async fn query(client: &Client, sql: &str) -> Result<Vec<String>, String> {
    match client.simple_query(sql).await {
        Ok(msgs) => Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    let cells: Vec<Option<&str>> = (0..r.len()).map(|i| r.get(i)).collect();
                    Some(format!("{cells:?}"))
                }
                _ => None,
            })
            .collect()),
        Err(e) => Err(e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| format!("ERROR: {}", d.message()))),
    }
}

fn show(r: &Result<Vec<String>, String>) -> String {
    match r {
        Ok(rows) if rows.is_empty() => "    (no rows)\n".into(),
        Ok(rows) => rows.iter().map(|r| format!("    {r}\n")).collect(),
        Err(e) => format!("    {e}\n"),
    }
}

async fn tables(client: &Client) -> BTreeMap<String, String> {
    let rows = client
        .simple_query(
            "select c.relname::text,
                    coalesce(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                                        order by a.attnum), '')
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
              where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname not like 'dts\\_%'
              group by 1",
        )
        .await
        .expect("list tables");
    rows.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap_or_default().to_owned(),
                r.get(1).unwrap_or_default().to_owned(),
            )),
            _ => None,
        })
        .collect()
}

async fn run_scenario(s: &Scenario) -> Run {
    let mut run = Run::default();
    let (source, destination) = start_clusters(&s.settings);
    let ws = Workspace::new(&source, &destination, TASK, &s.body);

    let setup = ws.path().join("setup.sql");
    std::fs::write(&setup, &s.setup).unwrap();
    if let Err(e) = source.psql("app", &["-f", setup.to_str().unwrap()]) {
        panic!(
            "SCENARIO {}: the source-setup failed on the source (scenario or environment problem): {e}",
            s.id
        );
    }

    // Initial sync, then streaming. Tables of more than a few pages are
    // copied in chunks; by one job for odd scenario numbers, three for even.
    let jobs = if s.id.parse::<u32>().unwrap_or(0) % 2 == 1 {
        "1"
    } else {
        "3"
    };
    let mut first = Bg(Some(ws.spawn_with(
        &["apply", "--auto-approve", "--jobs", jobs],
        "first",
        &[("PGSYNC_CHUNK_BYTES", "65536")],
    )));
    let deadline = Instant::now() + WAIT;
    loop {
        let child = first.0.as_mut().unwrap();
        if let Ok(Some(status)) = child.try_wait() {
            run.refused = Some(format!("exit {:?}\n{}", status.code(), logs(&ws, "first")));
            return run;
        }
        if phase(&ws).as_deref() == Some("streaming") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SCENARIO {}: pgsync did not reach streaming within {WAIT:?}\n{}",
            s.id,
            logs(&ws, "first")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let src = connect(&source, "app").await;
    let dst = connect(&destination, "app").await;

    // Changes while streaming.
    if !s.during.trim().is_empty() {
        let during = ws.path().join("during.sql");
        std::fs::write(&during, &s.during).unwrap();
        if let Err(e) = source.psql("app", &["-f", during.to_str().unwrap()]) {
            run.source_failed = Some(e.to_string());
        }
    }

    // Caught up: the destination's progress passes the source's WAL position.
    // The insert position: pg_current_wal_lsn() is the *write* position,
    // which lags behind commits under synchronous_commit = off (as the
    // throwaway clusters run).
    let target = first_value(&src, "select pg_current_wal_insert_lsn()::text")
        .await
        .expect("source WAL position");
    let progress = format!(
        "select applied_lsn >= '{target}'::pg_lsn from public.dts_apply_progress where task_name = '{TASK}'"
    );
    let deadline = Instant::now() + WAIT;
    let mut caught_up = false;
    while Instant::now() < deadline {
        if first_value(&dst, &progress).await.as_deref() == Some("t") {
            caught_up = true;
            break;
        }
        if let Ok(Some(_)) = first.0.as_mut().unwrap().try_wait() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGTERM: apply finishes the transaction in flight and exits 0.
    let mut child = first.0.take().unwrap();
    // (It may have exited already after an error: then kill finds no process.)
    sigterm(&child);
    match wait_exit(&mut child, Duration::from_secs(30)).await {
        Some(st) if st.success() && caught_up => {}
        Some(st) => run.apply_errors.push(format!(
            "streaming apply: exit {:?}, caught up: {caught_up}\n{}",
            st.code(),
            logs(&ws, "first")
        )),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            run.apply_errors.push(format!(
                "streaming apply did not exit within 30 s of SIGTERM\n{}",
                logs(&ws, "first")
            ));
        }
    }

    // Restart: catches up without losing or repeating anything.
    let mut second = Bg(Some(ws.spawn(
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        "second",
    )));
    let child = second.0.as_mut().unwrap();
    match wait_exit(child, WAIT).await {
        Some(st) if st.success() => {}
        Some(st) => run.apply_errors.push(format!(
            "apply --exit-when-caught-up: exit {:?}\n{}",
            st.code(),
            logs(&ws, "second")
        )),
        None => run.apply_errors.push(format!(
            "apply --exit-when-caught-up did not return within {WAIT:?}\n{}",
            logs(&ws, "second")
        )),
    }
    drop(second);
    for tag in ["first", "second"] {
        let err = std::fs::read_to_string(ws.log(tag, "err")).unwrap_or_default();
        for e in error_messages(&err) {
            if !run.errors.contains(&e) {
                run.errors.push(e);
            }
        }
    }

    // Compare.
    for check in checks(&s.expect) {
        match check.side {
            Side::Both => {
                let a = query(&src, &check.sql).await;
                let b = query(&dst, &check.sql).await;
                if a.is_err() || a != b {
                    run.mismatches.push(format!(
                        "query: {}\n  source{}:\n{}  destination:\n{}",
                        check.sql,
                        if a.is_err() {
                            " (fails on the source: scenario problem)"
                        } else {
                            ""
                        },
                        show(&a),
                        show(&b)
                    ));
                }
            }
            Side::Source | Side::Destination => {
                let (client, name) = if check.side == Side::Source {
                    (&src, "source")
                } else {
                    (&dst, "destination")
                };
                let got = query(client, &check.sql).await;
                let ok = match (&got, &check.expected) {
                    (Ok(rows), Some(v)) => rows.len() == 1 && rows[0] == format!("[Some({v:?})]"),
                    (Ok(_), None) => true,
                    (Err(_), _) => false,
                };
                if !ok {
                    run.mismatches.push(format!(
                        "{name} only: {}\n  expected {:?}, got:\n{}",
                        check.sql,
                        check.expected,
                        show(&got)
                    ));
                }
            }
        }
    }
    run.source_tables = tables(&src).await;
    run.destination_tables = tables(&dst).await;
    if !run.mismatches.is_empty() {
        // Keep the evidence when asked to (PGSYNC_SCENARIO_KEEP=DIR).
        if let Some(keep) = std::env::var_os("PGSYNC_SCENARIO_KEEP") {
            let dir = Path::new(&keep).join(&s.id);
            let _ = std::fs::create_dir_all(&dir);
            for tag in ["first", "second"] {
                for which in ["out", "err"] {
                    let _ =
                        std::fs::copy(ws.log(tag, which), dir.join(format!("{tag}.{which}.log")));
                }
            }
        }
    }
    run
}

fn report(s: &Scenario, run: &Run, title: &str) -> String {
    let mut r = String::new();
    if let Some(e) = &run.source_failed {
        let _ = writeln!(
            r,
            "the during-sync SQL failed on the source while pgsync ran:\n{e}"
        );
    }
    for e in &run.apply_errors {
        let _ = writeln!(r, "pgsync failed: {e}");
    }
    if !run.mismatches.is_empty() {
        let _ = writeln!(r, "expect queries that differ:");
        for m in &run.mismatches {
            let _ = writeln!(r, "{m}");
        }
    }
    format!("SCENARIO {} {title}\n{}\n{r}", s.id, s.header.trim_end())
}

async fn run_named(dir: Dir, name: &str, expect: Expect) {
    let Some(path) = dir.path() else { return };
    let s = load(&path, name);
    let run = run_scenario(&s).await;
    let clean =
        run.source_failed.is_none() && run.apply_errors.is_empty() && run.mismatches.is_empty();

    match expect {
        Expect::RefuseThenPassWithFullIdentity(names) => {
            let Some(out) = &run.refused else {
                panic!(
                    "SCENARIO {} FAILED: pgsync accepted tables without a usable replica identity {names:?}",
                    s.id
                );
            };
            for n in names {
                assert!(
                    out.contains(&format!("public.{n} (no primary key")),
                    "SCENARIO {} FAILED: the refusal does not name public.{n}:\n{out}",
                    s.id
                );
            }
            let mut with_full = s.clone();
            for n in names {
                with_full.setup.push_str(&format!(
                    "\nALTER TABLE public.{n} REPLICA IDENTITY FULL;\n"
                ));
            }
            let run = run_scenario(&with_full).await;
            if let Some(out) = &run.refused {
                panic!(
                    "SCENARIO {} FAILED: with REPLICA IDENTITY FULL pgsync still refused:\n{out}",
                    s.id
                );
            }
            let clean = run.source_failed.is_none()
                && run.apply_errors.is_empty()
                && run.mismatches.is_empty();
            assert!(
                clean,
                "{}",
                report(&with_full, &run, "FAILED (with REPLICA IDENTITY FULL)")
            );
            println!(
                "SCENARIO {} PASS (refused {names:?} by name; passes with REPLICA IDENTITY FULL)",
                s.id
            );
        }
        Expect::Pass => {
            if let Some(out) = &run.refused {
                panic!(
                    "SCENARIO {} FAILED: pgsync did not start streaming:\n{out}",
                    s.id
                );
            }
            assert!(clean, "{}", report(&s, &run, "FAILED"));
            println!("SCENARIO {} PASS", s.id);
        }
        Expect::PassOrRefuseNaming(names) => {
            if let Some(out) = &run.refused {
                let missing: Vec<&&str> = names
                    .iter()
                    .filter(|n| !out.contains(&format!("public.{n}")))
                    .collect();
                assert!(
                    missing.is_empty(),
                    "SCENARIO {} FAILED: pgsync refused to start but does not name {missing:?}:\n{out}",
                    s.id
                );
                println!(
                    "SCENARIO {} PASS (accepted alternative: pgsync refuses to start and names {names:?})",
                    s.id
                );
                return;
            }
            assert!(clean, "{}", report(&s, &run, "FAILED"));
            println!("SCENARIO {} PASS", s.id);
        }
        Expect::NotSupportedAttribute(attr) => {
            if let Some(out) = &run.refused {
                let message = format!("`{attr}` in ");
                assert!(
                    out.contains(&message) && out.contains("is not supported yet"),
                    "SCENARIO {} FAILED: pgsync refused to start, but not with \"`{attr}` ... is not supported yet\":\n{out}",
                    s.id
                );
                let line = out
                    .lines()
                    .find(|l| l.contains("is not supported yet"))
                    .unwrap_or_default()
                    .trim();
                println!("SCENARIO {} NOT YET SUPPORTED: {line}", s.id);
                return;
            }
            assert!(clean, "{}", report(&s, &run, "FAILED"));
            println!("SCENARIO {} PASS (`{attr}` is supported now)", s.id);
        }
    }
}

#[test]
fn expect_sections_split_into_statements_and_one_side_checks() {
    let c = checks(
        "SET TimeZone = 'UTC';\nSELECT 'a;b', $$x;y$$, E'\\';' -- trailing; comment\n  FROM t;\n\
         -- destination only: SELECT count(*) FROM orders WHERE r IS DISTINCT FROM 'eu';  expected 0\n\
         -- plain comment; not a query\nSELECT \"odd;name\" FROM t",
    );
    let sqls: Vec<(&Side, &str, Option<&str>)> = c
        .iter()
        .map(|c| (&c.side, c.sql.as_str(), c.expected.as_deref()))
        .collect();
    assert_eq!(
        sqls,
        [
            (&Side::Both, "SET TimeZone = 'UTC'", None),
            (
                &Side::Both,
                "SELECT 'a;b', $$x;y$$, E'\\';'  \n  FROM t",
                None
            ),
            (
                &Side::Destination,
                "SELECT count(*) FROM orders WHERE r IS DISTINCT FROM 'eu'",
                Some("0")
            ),
            (&Side::Both, "SELECT \"odd;name\" FROM t", None),
        ]
    );
}
