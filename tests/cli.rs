//! The binary as CI uses it: exit codes, messages, plan files, the state
//! lock, prechecks, resuming after kill -9 during the snapshot, and secrets.

use std::time::{Duration, Instant};

use crate::support::cli::{Workspace, expect_exit, stop_gracefully, text};
use crate::support::pg::{Pair, column, connect, exec};
use crate::support::sync::assert_converges;

const BODY: &str =
    "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn validate_reports_every_error_with_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.hcl"),
        "endpoint \"src\" {\n  hots = \"h\"\n  port = \"abc\"\n  database = \"d\"\n  user = \"u\"\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgsync"))
        .arg("--chdir")
        .arg(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    let a = dir.path().join("a.hcl").display().to_string();
    for expected in [
        format!("{a}:1:1: endpoint \"src\" is missing required attribute `host`"),
        format!("{a}:2:3: unknown attribute `hots` in endpoint \"src\""),
        "  hint: did you mean `host`?".to_owned(),
        format!(
            "{a}:3:10: `port` in endpoint \"src\" must be a whole number from 1 to 65535, got \"abc\""
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_plans_go_stale_and_the_state_lock_names_the_running_apply() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, v text); insert into t values (1, 'a')",
            ],
        )
        .unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "lock", BODY);
    let plan_file = ws.path().join("first.plan");
    let out = ws.run(&["plan", "--out", plan_file.to_str().unwrap()]);
    expect_exit(&out, 0);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&plan_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "plan files are private");
    }
    // Carry out a fresh plan; the saved one is now stale.
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    // The applied task's own slot and tables are not precheck failures.
    let pre = ws.run(&["precheck"]);
    assert_eq!(pre.status.code(), Some(0), "{}", text(&pre));
    assert!(!stderr(&pre).contains("[FAIL]"), "{}", text(&pre));
    let stale = ws.run(&["apply", plan_file.to_str().unwrap()]);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    assert!(
        stderr(&stale).contains("is stale: it was made at state serial"),
        "{}",
        text(&stale)
    );
    assert!(
        stderr(&stale).contains("hint: run `pgsync plan --out FILE` again"),
        "{}",
        text(&stale)
    );

    // A second process gets a clear lock error while apply streams.
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "stream");
    // Wait until the apply holds the state (it writes its pid there).
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid_file = ws.path().join(".pgsync/pid");
    while std::fs::read_to_string(&pid_file)
        .ok()
        .map(|p| p.trim().to_owned())
        != Some(apply.id().to_string())
    {
        assert!(
            apply.try_wait().unwrap().is_none(),
            "apply exited: {}",
            std::fs::read_to_string(ws.log("stream", "err")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "apply never took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let locked = ws.run(&["plan"]);
    assert_eq!(locked.status.code(), Some(1), "{}", text(&locked));
    let err = stderr(&locked);
    assert!(
        err.contains("error: state is locked by another pgsync process (pid "),
        "{err}"
    );
    assert!(
        err.contains("hint: wait for the other pgsync to finish"),
        "{err}"
    );

    // SIGTERM: finish the transaction in flight, record progress, exit 0.
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    exec(
        &src,
        "insert into t select g, 'x' from generate_series(2, 500) g",
    )
    .await;
    assert_converges(&src, &dst, 30, "before SIGTERM").await;
    stop_gracefully(&ws, &mut apply, "stream");
    let out = std::fs::read_to_string(ws.log("stream", "out")).unwrap();
    assert!(out.contains("Apply complete!"), "{out}");
    // The slot was told what was applied: nothing older is pending.
    let flushed = column(&src, "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) < 100000 from pg_replication_slots").await;
    assert_eq!(flushed, [Some("t".to_owned())]);
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prechecks_name_the_problem_and_the_fix() {
    let source = crate::support::pg::start_source(&["wal_level = replica"]);
    let destination = crate::support::pg::start_destination(&[]);
    source
        .psql("postgres", &["-c", "create database app"])
        .unwrap();
    destination
        .psql("postgres", &["-c", "create database app"])
        .unwrap();
    source
        .psql(
            "app",
            &[
                "-c",
                "create table keyless (a int, b text); create table ok (id int primary key)",
            ],
        )
        .unwrap();
    destination
        .psql("app", &["-c", "create table ok (id int primary key)"])
        .unwrap();
    let ws = Workspace::new(&source, &destination, "checks", BODY);
    let out = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    for expected in [
        "precheck [FAIL] source.wal_level: wal_level = replica; logical replication needs logical",
        "precheck [FAIL] source.primary_keys: tables without a usable replica identity, whose updates and deletes would fail on the source once published: public.keyless (no primary key, or only a deferrable one)",
        "fix: add a non-deferrable primary key, or run `alter table \"public\".\"keyless\" replica identity full;`",
        "precheck [FAIL] destination.conflicting_tables: tables already exist on the destination: public.ok",
        "error: precheck failed for task \"checks\"",
        "hint: set wal_level = logical in the source's postgresql.conf and restart it",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // Nothing was created on the source.
    let src = connect(&source, "app").await;
    assert_eq!(
        column(&src, "select (select count(*) from pg_publication) + (select count(*) from pg_class where relname like 'dts\\_%')").await,
        [Some("0".to_owned())]
    );
    // The precheck command alone reports the same and exits 1.
    let out = ws.run(&["precheck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("precheck [pass] source.select_privilege"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_the_snapshot_resumes_from_a_fresh_snapshot() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create table big (id int primary key, pad text not null);
                     insert into big select g, repeat(md5(g::text), 4) from generate_series(1, 1500000) g;
                     create table small (id int primary key, v int);
                     insert into small select g, g from generate_series(1, 1000) g;"],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "resume", BODY);
    let mut apply = ws.spawn(&["apply", "--auto-approve", "--jobs", "1"], "snap");
    // Wait until the copy is under way, then kill -9.
    let status_file = ws.path().join(".pgsync/status.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = std::fs::read_to_string(&status_file).unwrap_or_default();
        if s.contains("\"copying\"") {
            break;
        }
        assert!(Instant::now() < deadline, "copy never started: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    apply.kill().unwrap();
    let _ = apply.wait();
    // Writes while nothing runs; they must arrive exactly once.
    exec(&src, "update small set v = v + 1; insert into small values (5000, 1); delete from big where id <= 10").await;

    let plan = expect_exit(&ws.run(&["plan", "--detailed-exitcode"]), 2);
    assert!(plan.contains("~ task \"resume\" {"), "{plan}");
    assert!(
        plan.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{plan}"
    );
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    // The slot survived: its snapshot point is kept, and the tables not
    // copied yet are copied under a temporary slot's snapshot.
    assert!(
        stderr(&out)
            .contains("resuming the initial sync: 0 tables copied under slot dts_sync_resume")
            && stderr(&out).contains(
                "2 tables are copied under a new snapshot from temporary slot dts_tmp_resume"
            ),
        "{}",
        text(&out)
    );
    assert_converges(&src, &dst, 60, "after resuming the snapshot").await;
    assert_eq!(
        column(&src, "select count(*) from pg_replication_slots").await,
        [Some("1".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
    assert_eq!(
        column(&src, "select (select count(*) from pg_replication_slots) + (select count(*) from pg_publication)").await,
        [Some("0".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_state_plans_status_or_logs() {
    let pair = Pair::start();
    pair.source
        .psql("app", &["-c", "create table t (id int primary key)"])
        .unwrap();
    let body = BODY.to_owned();
    let ws = Workspace::new(&pair.source, &pair.destination, "secret", &body);
    // trust authentication ignores the password, so any value connects.
    let hcl = std::fs::read_to_string(ws.path().join("pgsync.hcl"))
        .unwrap()
        .replace(
            "user     = \"postgres\"\n",
            "user     = \"postgres\"\n  password = var.pw\n",
        );
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        format!("variable \"pw\" {{ sensitive = true }}\n{hcl}"),
    )
    .unwrap();
    let secret = "Sup3r-S3cret-Value";
    let with = |args: &[&str]| {
        let mut cmd = ws.command(args);
        cmd.env("PGSYNC_VAR_pw", secret).env("PGSYNC_LOG", "trace");
        cmd.output().unwrap()
    };
    let mut outputs = String::new();
    let plan_file = ws.path().join("p.plan");
    for args in [
        &["plan", "--out", plan_file.to_str().unwrap()][..],
        &["apply", "--auto-approve", "--exit-when-caught-up"],
        &["status"],
        &["status", "--json"],
        &["state", "show", "task.secret"],
        &["destroy", "--auto-approve"],
    ] {
        let out = with(args);
        outputs.push_str(&text(&out));
    }
    assert!(outputs.contains("Apply complete!"), "{outputs}");
    assert!(plan_file.exists(), "the plan file was written");
    assert!(!outputs.contains(secret), "a command printed the password");
    for entry in walk(ws.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} contains the password",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.ends_with("pgsync.hcl") {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_drop_destination_removes_every_created_object_so_apply_works_again() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create type status as enum ('new', 'done');
                     create domain positive as int check (value > 0);
                     create table job (id int primary key, s status, n positive);
                     create view open_jobs as select * from job where s = 'new';
                     create function job_count() returns bigint language sql as $$ select count(*) from job $$;
                     insert into job values (1, 'new', 1)"],
        )
        .unwrap();
    let ws = Workspace::new(&pair.source, &pair.destination, "again", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let out = ws.run(&["destroy", "--auto-approve", "--drop-destination"]);
    expect_exit(&out, 0);
    assert!(
        stderr(&out).contains("dropping the 5 destination objects the task created"),
        "{}",
        text(&out)
    );
    let dst = connect(&pair.destination, "app").await;
    assert_eq!(
        column(&dst, "select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace where n.nspname = 'public' and t.typname in ('status', 'positive', 'job', 'open_jobs')").await,
        [Some("0".to_owned())]
    );
    // The same configuration applies cleanly again.
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(
        column(&dst, "select job_count()").await,
        [Some("1".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[test]
fn a_wrong_command_line_exits_1_not_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgsync"))
        .args(["plan", "--detailed-exitcodes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_pgsync"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: pgsync"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_keeps_its_slot_moving_and_a_dropped_slot_is_reported() {
    let pair = Pair::start();
    pair.source
        .psql("app", &["-c", "create table t (id int primary key)"])
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "idle", BODY);
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "idle");
    // No user writes: only the heartbeat moves the slot past this point.
    let mark = column(&src, "select pg_current_wal_insert_lsn()::text").await[0]
        .clone()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let moved = column(
            &src,
            &format!("select confirmed_flush_lsn >= '{mark}'::pg_lsn from pg_replication_slots where slot_name = 'dts_sync_idle'"),
        )
        .await;
        if moved == [Some("t".to_owned())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot's confirmed LSN did not pass {mark} on an idle source"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop_gracefully(&ws, &mut apply, "idle");

    // A slot dropped by hand: apply stops with the reason, plan shows the re-sync.
    exec(&src, "select pg_drop_replication_slot('dts_sync_idle')").await;
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    let plan_shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        plan_shown.contains(
            "must be replaced: slot dts_sync_idle no longer exists on the source; forces re-sync"
        ),
        "{}",
        text(&out)
    );
    // Apply carries the replacement out: a fresh snapshot, then streaming.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        column(
            &src,
            "select count(*) from pg_replication_slots where slot_name = 'dts_sync_idle'"
        )
        .await,
        [Some("1".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}

#[test]
fn a_server_that_never_answers_times_out_with_the_address() {
    // Accepts TCP connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.hcl"),
        format!(
            "endpoint \"src\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  database = \"d\"\n  user = \"u\"\n}}\n\
             endpoint \"dst\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  database = \"e\"\n  user = \"u\"\n}}\n\
             task \"t\" {{\n  source = endpoint.src\n  destination = endpoint.dst\n  schema \"public\" {{}}\n}}\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgsync"))
        .arg("--chdir")
        .arg(dir.path())
        .arg("precheck")
        .env("PGSYNC_CONNECT_TIMEOUT", "2")
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("127.0.0.1:{port} accepted the connection but did not complete the PostgreSQL startup within 2 s")),
        "{err}"
    );
    assert!(
        err.contains("hint: check that host and port point at a PostgreSQL server"),
        "{err}"
    );
}
