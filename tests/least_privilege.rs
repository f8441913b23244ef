//! A least-privilege source role: LOGIN REPLICATION, CONNECT, and SELECT on
//! the selected tables only (no superuser, no CREATE anywhere, owns
//! nothing). With a publication the DBA created and named in the task's
//! `publication`, pgsync plans, copies, streams and destroys without
//! creating, altering or dropping anything on the source but its slot;
//! without it, the precheck names the missing grant and the fix.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::support::cli::{Workspace, expect_exit, stop_gracefully, text};
use crate::support::pg::{Pair, column, connect, exec, pair_majors};
use crate::support::sync::{assert_converges, digests};

/// The DBA's publication: a comma (`publication_names` is a list), double
/// quotes and capitals, so every place that names it must quote it.
const PUBLICATION: &str = "App,Pub \"1\"";

/// The replicator's SCRAM password (given to pgsync as `env("SRC_PASSWORD")`).
const PASSWORD: &str = "rep-Secret-4711";

/// Tables, the role, its pg_hba rule and (with `publication`) the DBA's
/// publication, all made by the superuser.
fn prepare_source(pair: &Pair, publication: bool) {
    pair.source
        .psql(
            "app",
            &[
                "-c",
                &format!(
                    "create table customers (id serial primary key, name text not null);
                     create table orders (id bigint generated always as identity primary key,
                                          customer_id int not null references customers,
                                          amount numeric(10, 2) not null);
                     insert into customers (name) select 'c' || g from generate_series(1, 300) g;
                     insert into orders (customer_id, amount)
                          select 1 + g % 300, g / 7.0 from generate_series(1, 2000) g;
                     revoke create on schema public from public;
                     create schema ops;
                     create table ops.audit (id int primary key, what text);
                     set password_encryption = 'scram-sha-256';
                     create role replicator login replication password '{PASSWORD}';
                     grant connect on database app to replicator;
                     grant select on public.customers, public.orders to replicator;
                     {}",
                    if publication {
                        // Also publishes a table the task does not select.
                        "create publication \"App,Pub \"\"1\"\"\" for table public.customers, public.orders, ops.audit;"
                    } else {
                        ""
                    }
                ),
            ],
        )
        .expect("prepare the source");
    // Password authentication for the replicator, before the default trust
    // lines. A logical replication connection (replication=database) is
    // matched by the lines for its database, so this line lets it stream.
    pair.source
        .add_hba_rules("host app replicator 127.0.0.1/32 scram-sha-256")
        .expect("pg_hba rule");
}

fn workspace(pair: &Pair, task: &str, publication: Option<&str>) -> Workspace {
    Workspace::with_config(&format!(
        r#"endpoint "src" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "replicator"
  password = env("SRC_PASSWORD")
}}

endpoint "dst" {{
  host     = "127.0.0.1"
  port     = {}
  database = "app"
  user     = "postgres"
}}

task "{task}" {{
  source      = endpoint.src
  destination = endpoint.dst
  sync_types  = ["schema", "full", "incremental"]
{}
  schema "public" {{}}
}}
"#,
        pair.source.port(),
        pair.destination.port(),
        publication.map_or(String::new(), |p| format!(
            "  publication = \"{}\"",
            p.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    ))
}

fn run(ws: &Workspace, args: &[&str]) -> Output {
    ws.command(args)
        .env("SRC_PASSWORD", PASSWORD)
        .output()
        .expect("run pgsync")
}

fn spawn(ws: &Workspace, args: &[&str], tag: &str) -> Child {
    let out = std::fs::File::create(ws.log(tag, "out")).expect("log file");
    let err = std::fs::File::create(ws.log(tag, "err")).expect("log file");
    ws.command(args)
        .env("SRC_PASSWORD", PASSWORD)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn pgsync")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "missing {n:?} in:\n{haystack}");
    }
}

/// pgoutput delivers logical message contents from PostgreSQL 14 on; on a
/// 13 source the heartbeat still moves the slot, but no sequence position
/// or source time arrives.
fn contents_arrive() -> bool {
    pair_majors().0 >= 14
}

/// Polls `sql` (one boolean) on `client` until it is true.
async fn wait_for(client: &tokio_postgres::Client, sql: &str, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while column(client, sql).await != [Some("t".to_owned())] {
        assert!(
            Instant::now() < deadline,
            "{what}: `{sql}` still false after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Objects pgsync could have left on the source: publications other than
/// the DBA's, `dts_*` relations, functions and event triggers.
const PGSYNC_TRACES: &str =
    "select (select count(*) from pg_publication where pubname <> 'App,Pub \"1\"')
         + (select count(*) from pg_class where relname like 'dts\\_%')
         + (select count(*) from pg_proc where proname like 'dts\\_%')
         + (select count(*) from pg_event_trigger)";

const APP_PUB_TABLES: &str =
    "select string_agg(schemaname || '.' || tablename, ',' order by schemaname, tablename)
       from pg_publication_tables where pubname = 'App,Pub \"1\"'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_role_with_select_only_streams_from_the_dbas_publication() {
    let pair = Pair::start();
    prepare_source(&pair, true);
    let ws = workspace(&pair, "lp", Some(PUBLICATION));
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;

    // The plan names the publication and says pgsync does not create it.
    let out = run(&ws, &["plan", "--detailed-exitcode"]);
    let plan = expect_exit(&out, 2);
    assert_contains(
        &plan,
        &[
            "# task.lp will be created: slot dts_sync_lp reading publication \"App,Pub \\\"1\\\"\" (not created by pgsync), heartbeat, schema, full copy, stream",
            "      + publication        = \"App,Pub \\\"1\\\"\"",
            "Plan: 1 to add, 0 to change, 0 to destroy.",
        ],
    );

    // Schema, copy and catch-up, as the replicator.
    let out = run(&ws, &["apply", "--auto-approve", "--exit-when-caught-up"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [pass] source.role_replication: role replicator may replicate",
            "precheck [pass] source.publication: publication \"App,Pub \\\"1\\\"\" publishes all 2 selected tables (created outside pgsync: never altered or dropped by it)",
            if contents_arrive() {
                "precheck [pass] source.heartbeat: the publication is not pgsync's (no helper table can join it): heartbeat and sequence positions travel as logical messages (pg_logical_emit_message); nothing is created on the source"
            } else {
                "precheck [WARN] source.heartbeat: the publication is not pgsync's (no helper table can join it): the heartbeat travels as a logical message and still moves the slot, but PostgreSQL 13's pgoutput drops message contents"
            },
            "precheck [WARN] source.sequence_privilege: role replicator may not read 2 selected sequences: public.customers_id_seq, public.orders_id_seq",
            "fix: run on the source: `grant select on sequence \"public\".\"customers_id_seq\", \"public\".\"orders_id_seq\" to \"replicator\";`",
            "precheck [pass] source.select_privilege: 2 tables readable",
            "precheck [WARN] source.ddl_capture: DDL capture publishes its own table",
            "streaming from publication \"App,Pub \\\"1\\\"\" (created outside pgsync: never altered or dropped by it)",
            "schema warning: sequence \"public\".\"customers_id_seq\": the source role may not read its position",
        ],
    );
    assert_converges(&src, &dst, 30, "after the initial sync").await;
    // The source holds the slot and nothing else of pgsync's; the
    // publication is as the DBA made it.
    assert_eq!(column(&src, PGSYNC_TRACES).await, [Some("0".to_owned())]);
    assert_eq!(
        column(&src, APP_PUB_TABLES).await,
        [Some("ops.audit,public.customers,public.orders".to_owned())]
    );
    assert_eq!(
        column(&src, "select slot_name from pg_replication_slots").await,
        [Some("dts_sync_lp".to_owned())]
    );
    // Unreadable sequences keep their start values on the destination.
    assert_eq!(
        column(
            &dst,
            "select last_value || ' ' || is_called from customers_id_seq"
        )
        .await,
        [Some("1 false".to_owned())]
    );
    // Applied again: nothing to change.
    let out = run(&ws, &["plan", "--detailed-exitcode"]);
    assert_contains(
        &expect_exit(&out, 0),
        &["No changes. Configuration, recorded state and databases agree."],
    );

    // Streaming in the background while the source is written to.
    let mut apply = spawn(&ws, &["apply", "--auto-approve"], "stream");
    exec(
        &src,
        "insert into customers (name) select 'n' || g from generate_series(1, 200) g;
         update orders set amount = amount + 1 where id % 3 = 0;
         delete from orders where id % 10 = 0;
         insert into orders (customer_id, amount) select 1 + g % 500, g from generate_series(1, 500) g;
         insert into ops.audit values (1, 'published, not selected');
         begin; update customers set name = name || '!' where id <= 50;
           delete from orders where customer_id > 480; delete from customers where id > 480; commit;",
    )
    .await;
    assert_converges(&src, &dst, 60, "while streaming").await;
    assert_eq!(
        column(&dst, "select count(*) from customers").await,
        [Some("480".to_owned())]
    );

    // An idle source: the heartbeat (a logical message) still moves the
    // slot, and its source time reaches the destination's progress row.
    let mark = column(&src, "select pg_current_wal_insert_lsn()::text").await[0]
        .clone()
        .unwrap();
    wait_for(
        &src,
        &format!("select confirmed_flush_lsn >= '{mark}'::pg_lsn from pg_replication_slots where slot_name = 'dts_sync_lp'"),
        30,
        "the slot advances on an idle source",
    )
    .await;
    // The message's content (the source time) arrives from 14 on.
    if contents_arrive() {
        wait_for(
            &dst,
            "select heartbeat_time > now() - interval '1 minute' from dts_apply_progress where task_name = 'lp'",
            30,
            "the heartbeat's source time arrives",
        )
        .await;
    }

    // Once the role may read a sequence, its position travels as a
    // logical message and the destination's sequence follows.
    exec(
        &src,
        "grant select on sequence customers_id_seq to replicator",
    )
    .await;
    exec(
        &src,
        "insert into customers (name) values ('after the grant')",
    )
    .await;
    let want = column(&src, "select last_value::text from customers_id_seq").await[0]
        .clone()
        .unwrap();
    assert_eq!(want, "501");
    wait_for(
        &dst,
        "select exists (select 1 from customers where name = 'after the grant')",
        30,
        "the row written after the grant arrives",
    )
    .await;
    // Logical message contents reach pgoutput's client from 14 on; a 13
    // source's sequence positions do not travel (the precheck warns).
    if contents_arrive() {
        wait_for(
            &dst,
            "select last_value = 501 and is_called from customers_id_seq",
            30,
            "the sequence position arrives",
        )
        .await;
    }

    stop_gracefully(&ws, &mut apply, "stream");
    let log = std::fs::read_to_string(ws.log("stream", "err")).unwrap();
    assert_contains(
        &log,
        &[
            "skipping changes to ops.audit: publication \"App,Pub \\\"1\\\"\" publishes it, the task does not select it",
        ],
    );
    // Both sides hold the same rows, table by table.
    let (s, d) = (digests(&src).await, digests(&dst).await);
    assert_eq!(s, d);
    assert_eq!(
        s.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["customers", "orders"]
    );

    // Leaving the attribute out is a replacement, and the plan says why.
    let hcl = std::fs::read_to_string(ws.path().join("pgsync.hcl")).unwrap();
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        hcl.replace("  publication = \"App,Pub \\\"1\\\"\"\n", ""),
    )
    .unwrap();
    let out = run(&ws, &["plan", "--detailed-exitcode"]);
    assert_contains(
        &expect_exit(&out, 2),
        &[
            "# task.lp must be replaced: the stream moves from publication \"App,Pub \\\"1\\\"\" to pgsync's own publication; a new slot and snapshot are needed, forces re-sync",
            "      - publication        = \"App,Pub \\\"1\\\"\"",
            "Plan: 1 to add, 0 to change, 1 to destroy.",
        ],
    );
    std::fs::write(ws.path().join("pgsync.hcl"), &hcl).unwrap();

    // Destroy drops the slot and leaves the DBA's publication alone.
    let out = run(&ws, &["destroy", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(
        &format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)),
        &[
            "leaving publication \"App,Pub \\\"1\\\"\" in place: it was created outside pgsync (the task's `publication`)",
        ],
    );
    assert_eq!(
        column(&src, "select count(*) from pg_replication_slots").await,
        [Some("0".to_owned())]
    );
    assert_eq!(
        column(&src, APP_PUB_TABLES).await,
        [Some("ops.audit,public.customers,public.orders".to_owned())]
    );
    assert_eq!(column(&src, PGSYNC_TRACES).await, [Some("0".to_owned())]);

    // The password never showed.
    for tag in ["stream"] {
        for which in ["out", "err"] {
            let log = std::fs::read_to_string(ws.log(tag, which)).unwrap();
            assert!(
                !log.contains(PASSWORD),
                "the password leaked into {tag}.{which}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_publication_the_precheck_names_the_missing_grant_and_the_fix() {
    let pair = Pair::start();
    prepare_source(&pair, false);
    let ws = workspace(&pair, "lp2", None);
    let out = run(&ws, &["precheck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert_contains(
        &err,
        &[
            "precheck [FAIL] source.publication: role replicator cannot create publication dts_pub_lp2: it lacks CREATE on database app; ownership of 2 selected tables (only a table's owner may add it to a publication): public.customers, public.orders",
            "fix: have the tables' owner or a superuser run on the source `create publication \"pgsync_lp2\" for table \"public\".\"customers\", \"public\".\"orders\";` and set `publication = \"pgsync_lp2\"` in task \"lp2\" (pgsync then never creates, alters or drops it); or run `grant create on database \"app\" to \"replicator\"; grant <the tables' owner> to \"replicator\";`",
            if contents_arrive() {
                "precheck [pass] source.heartbeat: role replicator may not create tables in schema public: heartbeat and sequence positions travel as logical messages"
            } else {
                "precheck [WARN] source.heartbeat: role replicator may not create tables in schema public: the heartbeat travels as a logical message"
            },
            "precheck [pass] source.role_replication: role replicator may replicate",
            "error: precheck failed for task \"lp2\"",
        ],
    );
    // apply stops at the same place, before creating anything.
    let out = run(&ws, &["apply", "--auto-approve", "--exit-when-caught-up"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("hint: have the tables' owner or a superuser run on the source `create publication \"pgsync_lp2\""),
        "{}",
        text(&out)
    );
    let src = connect(&pair.source, "app").await;
    assert_eq!(
        column(
            &src,
            "select (select count(*) from pg_publication) + (select count(*) from pg_replication_slots)
                  + (select count(*) from pg_class where relname like 'dts\\_%')"
        )
        .await,
        [Some("0".to_owned())]
    );

    // The publication the fix names makes the precheck pass.
    exec(
        &src,
        "create publication \"pgsync_lp2\" for table \"public\".\"customers\", \"public\".\"orders\"",
    )
    .await;
    let ws = workspace(&pair, "lp2", Some("pgsync_lp2"));
    let out = run(&ws, &["precheck"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [pass] source.publication: publication \"pgsync_lp2\" publishes all 2 selected tables",
        ],
    );
    // A publication missing a table is named, with the statement that fixes it.
    exec(&src, "alter publication pgsync_lp2 drop table orders").await;
    let out = run(&ws, &["precheck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [FAIL] source.publication: publication \"pgsync_lp2\" does not publish these selected tables: public.orders",
            "fix: run on the source as the tables' owner or a superuser: `alter publication \"pgsync_lp2\" add table \"public\".\"orders\";`",
        ],
    );
    // A table in a schema the role may not use: both grants are named.
    let hcl = std::fs::read_to_string(ws.path().join("pgsync.hcl")).unwrap();
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        hcl.replace(
            "  schema \"public\" {}\n",
            "  schema \"public\" {}\n  table \"ops.audit\" {}\n",
        ),
    )
    .unwrap();
    let out = run(&ws, &["precheck"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [FAIL] source.select_privilege: role replicator cannot read every selected table: no USAGE on schema ops; no SELECT privilege on: ops.audit",
            "fix: run on the source: `grant usage on schema \"ops\" to \"replicator\"; grant select on \"ops\".\"audit\" to \"replicator\";`",
            "precheck [FAIL] source.publication: publication \"pgsync_lp2\" does not publish these selected tables: ops.audit, public.orders",
        ],
    );
}

/// The tables' owner, without superuser and without CREATE on schema
/// `public` (PostgreSQL 15's default): pgsync creates its own publication,
/// no helper table, and the heartbeat and sequence positions travel as
/// logical messages; destroy leaves nothing. Granted CREATE on `public`, the
/// next task uses (and destroy removes) the helper tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_owner_gets_pgsyncs_publication_and_helper_tables_only_with_create_on_public() {
    let pair = Pair::start();
    prepare_source(&pair, false);
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create role owner_rep login replication;
                 grant create on database app to owner_rep;
                 alter table customers owner to owner_rep;
                 alter table orders owner to owner_rep;",
            ],
        )
        .expect("owner role");
    let ws = workspace(&pair, "own", None);
    let hcl = std::fs::read_to_string(ws.path().join("pgsync.hcl")).unwrap();
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        hcl.replace(
            "  user     = \"replicator\"\n  password = env(\"SRC_PASSWORD\")\n",
            "  user     = \"owner_rep\"\n",
        ),
    )
    .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let out = run(&ws, &["apply", "--auto-approve", "--exit-when-caught-up"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [pass] source.publication: role owner_rep may create publication dts_pub_own (CREATE on database app, owns the selected tables)",
            if contents_arrive() {
                "precheck [pass] source.heartbeat: role owner_rep may not create tables in schema public: heartbeat and sequence positions travel as logical messages"
            } else {
                "precheck [WARN] source.heartbeat: role owner_rep may not create tables in schema public: the heartbeat travels as a logical message"
            },
            "precheck [pass] source.sequence_privilege: every selected sequence is readable",
            "creating publication dts_pub_own",
        ],
    );
    assert_eq!(
        column(&src, "select string_agg(schemaname || '.' || tablename, ',' order by schemaname, tablename) from pg_publication_tables where pubname = 'dts_pub_own'").await,
        [Some("public.customers,public.orders".to_owned())]
    );
    assert_eq!(
        column(
            &src,
            "select count(*) from pg_class where relname like 'dts\\_%'"
        )
        .await,
        [Some("0".to_owned())]
    );
    // The owner reads its sequences: the schema sync set their positions.
    assert_eq!(
        column(
            &dst,
            "select last_value || ' ' || is_called from customers_id_seq"
        )
        .await,
        [Some("300 true".to_owned())]
    );

    let mut apply = spawn(&ws, &["apply", "--auto-approve"], "stream");
    exec(
        &src,
        "insert into customers (name) select 'n' || g from generate_series(1, 50) g;
         select nextval('customers_id_seq') from generate_series(1, 7);",
    )
    .await;
    assert_converges(&src, &dst, 60, "while streaming").await;
    // 357 = 300 copied + 50 inserted + 7 taken without a row.
    if contents_arrive() {
        wait_for(
            &dst,
            "select last_value = 357 and is_called from customers_id_seq",
            30,
            "the sequence position arrives as a logical message",
        )
        .await;
    }
    stop_gracefully(&ws, &mut apply, "stream");

    let out = run(&ws, &["destroy", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(&stderr(&out), &["dropping publication dts_pub_own"]);
    let traces =
        "select (select count(*) from pg_publication) + (select count(*) from pg_replication_slots)
                       + (select count(*) from pg_class where relname like 'dts\\_%')";
    assert_eq!(column(&src, traces).await, [Some("0".to_owned())]);

    // With CREATE on schema public the helper tables are used (and
    // published), and sequence positions travel through them.
    exec(&src, "grant create on schema public to owner_rep").await;
    exec(
        &dst,
        "drop table customers, orders cascade; drop table if exists dts_apply_progress",
    )
    .await;
    let out = run(&ws, &["apply", "--auto-approve", "--exit-when-caught-up"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_contains(
        &stderr(&out),
        &[
            "precheck [pass] source.heartbeat: heartbeat and sequence positions travel through public.dts_postgres_heartbeat and public.dts_sequence_state (created by apply)",
            "creating heartbeat tables public.dts_postgres_heartbeat and public.dts_sequence_state",
        ],
    );
    assert_eq!(
        column(&src, "select string_agg(schemaname || '.' || tablename, ',' order by schemaname, tablename) from pg_publication_tables where pubname = 'dts_pub_own'").await,
        [Some("public.customers,public.dts_postgres_heartbeat,public.dts_sequence_state,public.orders".to_owned())]
    );
    let mut apply = spawn(&ws, &["apply", "--auto-approve"], "tables");
    exec(
        &src,
        "select nextval('customers_id_seq') from generate_series(1, 5)",
    )
    .await;
    wait_for(
        &dst,
        "select last_value = 362 and is_called from customers_id_seq",
        30,
        "the sequence position arrives through public.dts_sequence_state",
    )
    .await;
    stop_gracefully(&ws, &mut apply, "tables");
    assert_eq!(
        column(&src, "select count(*) from dts_sequence_state where task_name = 'own' and seq_name = 'customers_id_seq' and last_value = 362").await,
        [Some("1".to_owned())]
    );
    expect_exit(&run(&ws, &["destroy", "--auto-approve"]), 0);
    assert_eq!(column(&src, traces).await, [Some("0".to_owned())]);
}
