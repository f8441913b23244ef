//! Issue 2's end-to-end test: Pagila from ../shared/testdata synced with
//! schema + full + incremental, a write workload while streaming, kill -9
//! of apply, more writes, restart, then destroy; once with `--jobs 1` and
//! once with 3 jobs, both with chunks of 256 kB (`PGSYNC_CHUNK_BYTES`) so
//! the larger tables (rental, payment partitions, film) are copied in
//! chunks.

use crate::schema_sync::{assert_same, fingerprint};
use crate::support::cli::{Workspace, expect_exit, text};
use crate::support::pg::{Pair, column, connect, exec, shared_testdata};
use crate::support::sync::assert_converges;

/// A table with an incompressible TOASTed column, so an UPDATE of another
/// column sends the big value as "unchanged TOAST".
const TOAST_FIXTURE: &str = "
create table toasty (id int primary key, big text not null, n int not null default 0);
insert into toasty (id, big)
select g, (select string_agg(md5(random()::text || g || i), '') from generate_series(1, 300) i)
  from generate_series(1, 20) g;
";

const WORKLOAD: &str = "
insert into actor (first_name, last_name) values ('NEW', 'ACTOR'), ('ANOTHER', 'ONE');
update film set rental_rate = rental_rate + 1 where film_id <= 50;
update staff set active = not active;
update toasty set n = n + 1 where id <= 10;
delete from film_actor where film_id = 1;
insert into payment (customer_id, staff_id, rental_id, amount, payment_date)
values (1, 1, 1, 9.99, '2022-02-15 10:00:00+00'), (2, 2, 2, 1.50, '2022-05-01 08:30:00+00');
update payment set amount = amount + 0.01 where payment_id in (select payment_id from payment order by payment_id limit 5);
update customer set email = lower(email) where customer_id < 100;
";

const TRANSACTIONS: &str = "
begin; insert into actor (first_name, last_name) values ('ROLLED', 'BACK'); rollback;
begin;
insert into category (name) values ('kept');
savepoint s1;
insert into category (name) values ('dropped');
rollback to savepoint s1;
insert into category (name) values ('kept too');
update toasty set n = n + 10 where id = 20;
commit;
";

fn pagila() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    Some((
        shared_testdata("pagila/pagila-schema.sql")?,
        shared_testdata("pagila/pagila-data.sql")?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_snapshot_stream_kill9_restart_and_destroy() {
    pagila_end_to_end("3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_end_to_end_with_one_job() {
    pagila_end_to_end("1").await;
}

async fn pagila_end_to_end(jobs: &str) {
    let Some((schema, data)) = pagila() else {
        eprintln!("SKIPPED: Pagila sample data not found (see message above)");
        return;
    };
    let pair = Pair::start();
    pair.source
        .psql("app", &["-f", schema.to_str().unwrap()])
        .expect("load pagila schema");
    pair.source
        .psql("app", &["-f", data.to_str().unwrap()])
        .expect("load pagila data");
    pair.source
        .psql("app", &["-c", TOAST_FIXTURE])
        .expect("toast fixture");
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;

    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "pagila",
        "  sync_types  = [\"schema\", \"full\", \"incremental\"]\n  schema \"public\" {}",
    );

    // plan: one task to add; --detailed-exitcode says "changes" with 2.
    let plan = expect_exit(&ws.run(&["plan", "--detailed-exitcode"]), 2);
    assert!(plan.contains("  + task \"pagila\" {"), "{plan}");
    assert!(
        plan.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{plan}"
    );

    // apply without approval on a non-interactive stdin is refused.
    let refused = ws.run(&["apply"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs confirmation"),
        "{}",
        text(&refused)
    );

    // Initial sync, then stream until caught up.
    let applied = ws
        .command(&[
            "apply",
            "--auto-approve",
            "--exit-when-caught-up",
            "--jobs",
            jobs,
        ])
        .env("PGSYNC_CHUNK_BYTES", "262144")
        .output()
        .unwrap();
    expect_exit(&applied, 0);
    let log = String::from_utf8_lossy(&applied.stderr);
    assert!(log.contains(&format!(", {jobs} at a time")), "{log}");
    assert!(
        log.contains("progress table=public.rental chunk="),
        "rental was not chunked: {log}"
    );
    assert!(log.contains("precheck [pass] source.wal_level"), "{log}");
    assert!(
        log.contains("creating replication slot dts_sync_pagila"),
        "{log}"
    );
    assert_converges(&src, &dst, 30, "after the snapshot").await;
    // The schema arrived whole: every object kind's definitions are identical.
    let without_helpers = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.contains("public.dts_") && !l.contains("public._dts_"))
            .collect()
    };
    assert_same(
        &without_helpers(fingerprint(&dst).await),
        &without_helpers(fingerprint(&src).await),
    );
    // Partitions arrived as partitions, the view and the trigger exist.
    assert_eq!(
        column(
            &dst,
            "select count(*) from pg_inherits where inhparent = 'public.payment'::regclass"
        )
        .await,
        column(
            &src,
            "select count(*) from pg_inherits where inhparent = 'public.payment'::regclass"
        )
        .await
    );

    // After a completed apply, plan shows no changes.
    let plan = expect_exit(&ws.run(&["plan", "--detailed-exitcode"]), 0);
    assert!(plan.contains("No changes."), "{plan}");

    // Stream in the background while the source is written.
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "stream1");
    exec(&src, WORKLOAD).await;
    exec(&src, TRANSACTIONS).await;
    assert_converges(&src, &dst, 60, "after streaming the workload").await;
    assert_eq!(
        column(&dst, "select count(*) from category where name = 'dropped'").await,
        [Some("0".to_owned())]
    );
    assert_eq!(
        column(
            &dst,
            "select count(*) from actor where first_name = 'ROLLED'"
        )
        .await,
        [Some("0".to_owned())]
    );

    // status from another terminal works while apply holds the state.
    let mut status = String::new();
    for _ in 0..40 {
        status = expect_exit(&ws.run(&["status"]), 0);
        if status.contains("lag:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(status.contains("apply is running"), "{status}");
    assert!(status.contains("task.pagila: phase streaming"), "{status}");
    assert!(status.contains("lag:"), "{status}");

    // kill -9 in the middle of a stream of transactions, write more, restart.
    exec(&src, "update film set length = length + 1").await;
    apply.kill().expect("kill -9 apply");
    let _ = apply.wait();
    exec(&src, WORKLOAD).await;
    exec(&src, "insert into actor (first_name, last_name) select 'BULK', 'ROW' || g from generate_series(1, 2000) g").await;
    let resumed = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&resumed, 0);
    assert_converges(&src, &dst, 60, "after kill -9 and restart").await;

    // Destroy leaves nothing of pgsync on the source; destination data stays.
    let destroyed = ws.run(&["destroy", "--auto-approve"]);
    expect_exit(&destroyed, 0);
    assert_eq!(
        column(
            &src,
            "select (select count(*) from pg_replication_slots) || ' ' ||
                    (select count(*) from pg_publication) || ' ' ||
                    (select count(*) from pg_class where relname like 'dts\\_%') || ' ' ||
                    (select count(*) from pg_event_trigger where evtname like 'dts\\_%')"
        )
        .await,
        [Some("0 0 0 0".to_owned())]
    );
    assert_eq!(
        column(&dst, "select count(*) from actor where first_name = 'BULK'").await,
        [Some("2000".to_owned())]
    );
    let state = expect_exit(&ws.run(&["state", "list"]), 0);
    assert_eq!(state, "");
}
