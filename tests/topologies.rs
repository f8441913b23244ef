//! Several tasks in one configuration, run by one `pgsync apply`: one
//! source feeding two destinations (one-to-many), two sources feeding one
//! destination into different schemas and into one shared table
//! (many-to-one), and A → B → C where the second task decodes on B what
//! the first applied there (cascade).

use crate::support::cli::{Workspace, expect_exit, stop_gracefully};
use crate::support::pg::{column, connect, exec, start_destination, start_source};

fn endpoint(name: &str, port: u16) -> String {
    format!(
        "endpoint \"{name}\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  database = \"app\"\n  user = \"postgres\"\n}}\n"
    )
}

const A_SETUP: &str = "
create schema s1; create schema s2; create schema ev;
create table s1.t1 (id int primary key, v text);
insert into s1.t1 select g, 'a' || g from generate_series(1, 100) g;
create table s2.users (id int primary key, name text);
insert into s2.users select g, 'user a' || g from generate_series(1, 20) g;
create table ev.events (id int primary key, what text);
insert into ev.events select g, 'from a' from generate_series(1, 50) g;
";

const B_SETUP: &str = "
create schema s2; create schema ev;
create table s2.users (id int primary key, name text);
insert into s2.users select g, 'user b' || g from generate_series(1, 30) g;
create table ev.events (id int primary key, what text);
insert into ev.events select g, 'from b' from generate_series(1001, 1040) g;
";

/// Rows of `sql` as one string per row.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    column(client, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_many_many_to_one_and_cascade_run_side_by_side() {
    let (a, b, c) = std::thread::scope(|s| {
        let a = s.spawn(|| start_source(&[]));
        let b = s.spawn(|| start_destination(&[]));
        let c = s.spawn(|| start_destination(&[]));
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    for cluster in [&a, &b, &c] {
        cluster
            .psql("postgres", &["-c", "create database app"])
            .unwrap();
    }
    a.psql("app", &["-c", A_SETUP]).unwrap();
    b.psql("app", &["-c", B_SETUP]).unwrap();
    let hcl = format!(
        r#"{}{}{}
# One-to-many: A feeds B (s1) and C (s2, renamed). Cascade: B passes s1 on
# to C. Many-to-one: C receives s2 from A and from B in two schemas, and
# ev.events from both into one table.
task "a_to_b" {{
  source      = endpoint.a
  destination = endpoint.b
  schema "s1" {{}}
}}
task "a_to_c" {{
  source      = endpoint.a
  destination = endpoint.c
  schema "s2" {{ rename = "from_a" }}
  table "ev.events" {{ rename = "merged.events" }}
}}
task "b_events" {{
  source             = endpoint.b
  destination        = endpoint.c
  conflicting_tables = "ignore"
  table "ev.events" {{ rename = "merged.events" }}
}}
task "b_to_c" {{
  source      = endpoint.b
  destination = endpoint.c
  schema "s1" {{}}
  schema "s2" {{ rename = "from_b" }}
}}
"#,
        endpoint("a", a.port()),
        endpoint("b", b.port()),
        endpoint("c", c.port())
    );
    let ws = Workspace::with_config(&hcl);
    let plan = expect_exit(&ws.run(&["plan"]), 0);
    assert!(
        plan.contains("Plan: 4 to add, 0 to change, 0 to destroy."),
        "{plan}"
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let (ca, cb, cc) = (
        connect(&a, "app").await,
        connect(&b, "app").await,
        connect(&c, "app").await,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "all");
    exec(&ca, "insert into s1.t1 values (101, 'late'); update s1.t1 set v = 'x' where id = 5; delete from s1.t1 where id = 6").await;
    exec(&ca, "insert into s2.users values (21, 'late a')").await;
    exec(&cb, "insert into s2.users values (31, 'late b')").await;
    exec(&ca, "insert into ev.events values (51, 'late a')").await;
    exec(&cb, "insert into ev.events values (1041, 'late b')").await;

    let t1 = "select id || ':' || v from s1.t1 order by id";
    let users = |schema: &str| format!("select id || ':' || name from {schema}.users order by id");
    let events = "select id || ':' || what from ev.events order by id";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let want_t1 = rows(&ca, t1).await;
        let want_events: Vec<_> = {
            let mut v = rows(&ca, events).await;
            v.extend(rows(&cb, events).await);
            v
        };
        let state = (
            rows(&cb, t1).await == want_t1,
            rows(&cc, t1).await == want_t1,
            rows(&cc, &users("from_a")).await == rows(&ca, &users("s2")).await,
            rows(&cc, &users("from_b")).await == rows(&cb, &users("s2")).await,
            rows(
                &cc,
                "select id || ':' || what from merged.events order by id",
            )
            .await
                == want_events,
        );
        if state == (true, true, true, true, true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not converged (B t1, C t1 via cascade, C from_a, C from_b, C merged): {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // No duplicates and no loop: C holds each row once.
    assert_eq!(
        rows(&cc, "select count(*)::text from s1.t1").await,
        [Some("100".to_owned())]
    );
    assert_eq!(
        rows(&cc, "select count(*)::text from merged.events").await,
        [Some("92".to_owned())]
    );
    // Four slots: two on A (one-to-many), two on B.
    assert_eq!(
        rows(
            &ca,
            "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots"
        )
        .await,
        [Some("dts_sync_a_to_b,dts_sync_a_to_c".to_owned())]
    );
    assert_eq!(
        rows(
            &cb,
            "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots"
        )
        .await,
        [Some("dts_sync_b_events,dts_sync_b_to_c".to_owned())]
    );
    stop_gracefully(&ws, &mut apply, "all");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
    for client in [&ca, &cb] {
        assert_eq!(
            rows(client, "select count(*)::text from pg_replication_slots").await,
            [Some("0".to_owned())]
        );
    }
}
