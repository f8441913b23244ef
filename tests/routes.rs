//! Choosing and reshaping what is synchronized (issue 5): `where` filters
//! applied identically by the snapshot and the stream, column selection
//! and renames, schema renames, per-table `operations`, and the checks
//! that reject a wrong filter or column list before anything is created.

use crate::support::cli::{Workspace, expect_exit, stop_gracefully, text};
use crate::support::pg::{Pair, column, connect, exec};

const SETUP: &str = "
create schema sales;
create table sales.orders (
    id int primary key,
    customer text not null,
    amount numeric not null,
    note text,
    secret text not null,
    big text
);
-- Out of line and uncompressed: an UPDATE that leaves it alone sends it as
-- 'unchanged TOAST'.
alter table sales.orders alter column big set storage external;
insert into sales.orders
  select g, 'c' || g, g - 50, 'n' || g, 's' || g, repeat(md5(g::text), 200)
  from generate_series(1, 100) g;
create table sales.items (id int primary key, label text);
insert into sales.items select g, 'i' || g from generate_series(1, 10) g;
create table sales.audit (id int primary key, what text);
insert into sales.audit select g, 'a' || g from generate_series(1, 5) g;
create view sales.big_orders as select id, amount from sales.orders where amount > 40;
";

const TASK: &str = r#"  sync_types = ["schema", "full", "incremental"]
  schema "sales" {
    rename = "reporting"
  }
  table "sales.orders" {
    rename     = "reporting.purchases"
    columns    = ["id", "customer", "amount", "note", "big"]
    column_map = { customer = "client" }
    where      = "amount > 0"
  }
  table "sales.audit" {
    operations = ["insert", "truncate"]
  }"#;

/// What the destination must hold for `reporting.purchases`: the source
/// rows inside the filter, selected columns, as text.
const EXPECTED: &str = "select id::text || '|' || customer || '|' || amount::text || '|' || \
                        coalesce(note, '-') || '|' || md5(coalesce(big, '-')) \
                        from sales.orders where amount > 0 order by id";
const ACTUAL: &str = "select id::text || '|' || client || '|' || amount::text || '|' || \
                      coalesce(note, '-') || '|' || md5(coalesce(big, '-')) \
                      from reporting.purchases order by id";

async fn wait_for(dst: &tokio_postgres::Client, src: &tokio_postgres::Client, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let want = column(src, EXPECTED).await;
        let got = column(dst, ACTUAL).await;
        if want == got {
            return;
        }
        if std::time::Instant::now() > deadline {
            let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).collect();
            let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
            panic!("{what}: destination differs; extra {extra:?}, missing {missing:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_columns_renames_and_operations_hold_in_snapshot_and_stream() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(&pair.source, &pair.destination, "shaped", TASK);

    let plan = expect_exit(&ws.run(&["plan"]), 0);
    assert!(
        plan.contains(
            "table \"sales.orders\" { rename = \"reporting.purchases\", columns = [\"id\", \
             \"customer\", \"amount\", \"note\", \"big\"], column_map = { customer = \"client\" }, \
             where = \"amount > 0\" }"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("schema \"sales\" { rename = \"reporting\" }"),
        "{plan}"
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );

    // The snapshot: renamed, reshaped, filtered.
    wait_for(&dst, &src, "after the snapshot").await;
    assert_eq!(
        column(&dst, "select count(*)::text from reporting.purchases").await,
        [Some("50".to_owned())]
    );
    assert_eq!(
        column(
            &dst,
            "select string_agg(attname, ',' order by attnum) from pg_attribute \
             where attrelid = 'reporting.purchases'::regclass and attnum > 0 and not attisdropped"
        )
        .await,
        [Some("id,client,amount,note,big".to_owned())]
    );
    assert_eq!(
        column(&dst, "select count(*)::text from reporting.items").await,
        [Some("10".to_owned())]
    );
    // The view moved with its schema and still reads the renamed table.
    assert_eq!(
        column(&dst, "select count(*)::text from reporting.big_orders").await,
        [Some("10".to_owned())]
    );
    // The staging schema pgsync created is gone.
    let left = column(
        &dst,
        "select string_agg(classid::regclass::text || ':' || pg_describe_object(classid, objid, objsubid), ', ') \
         from pg_depend where refclassid = 'pg_namespace'::regclass \
         and refobjid = (select oid from pg_namespace where nspname = 'sales')",
    )
    .await;
    assert_eq!(left, [None], "objects left in the staging schema");
    assert_eq!(
        column(
            &dst,
            "select count(*)::text from pg_namespace where nspname = 'sales'"
        )
        .await,
        [Some("0".to_owned())]
    );

    let mut apply = ws.spawn(&["apply", "--auto-approve"], "stream");
    for sql in [
        // Insert inside, insert outside.
        "insert into sales.orders values (1000, 'new', 5, 'in', 's', 'b')",
        "insert into sales.orders values (1001, 'new', -5, 'out', 's', 'b')",
        // In → out, out → in (only `amount` changes: `big` is unchanged
        // TOAST and comes from the source), out → out.
        "update sales.orders set amount = -1 where id = 60",
        "update sales.orders set amount = 7 where id = 10",
        "update sales.orders set note = 'still out' where id = 11",
        // Key change inside; in → in leaving `big` alone.
        "update sales.orders set id = 7000 where id = 70",
        "update sales.orders set note = 'changed' where id = 80",
        // Deletes inside and outside; a change of an unselected column.
        "delete from sales.orders where id = 90",
        "delete from sales.orders where id = 20",
        "update sales.orders set secret = 'hidden' where id = 85",
        // Several rows in one transaction, mixed.
        "begin; insert into sales.orders select g, 'b', g % 3 - 1, null, 's', null \
         from generate_series(2000, 2020) g; update sales.orders set amount = amount + 10 \
         where id between 30 and 45; commit",
        // operations = [insert, truncate]: updates and deletes are skipped.
        "insert into sales.audit values (100, 'kept')",
        "update sales.audit set what = 'changed' where id = 1",
        "delete from sales.audit where id = 2",
        "truncate sales.items",
        "insert into sales.items values (99, 'after truncate')",
    ] {
        exec(&src, sql).await;
    }
    wait_for(&dst, &src, "after the stream").await;
    // TRUNCATE of the filtered table, then rows inside and outside again.
    exec(&src, "truncate sales.orders").await;
    exec(
        &src,
        "insert into sales.orders values (1, 'after', 3, 'in', 's', 'b'), (2, 'after', -3, 'out', 's', 'b')",
    )
    .await;
    wait_for(&dst, &src, "after the truncate").await;
    assert_eq!(
        column(
            &dst,
            "select string_agg(id::text, ',') from reporting.purchases"
        )
        .await,
        [Some("1".to_owned())]
    );
    let items = || async {
        column(
            &dst,
            "select string_agg(id::text || label, ',' order by id) from reporting.items",
        )
        .await
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while items().await != [Some("99after truncate".to_owned())]
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(items().await, [Some("99after truncate".to_owned())]);
    assert_eq!(
        column(
            &dst,
            "select string_agg(id::text || '=' || what, ',' order by id) from reporting.audit"
        )
        .await,
        [Some("1=a1,2=a2,3=a3,4=a4,5=a5,100=kept".to_owned())]
    );
    // `status` from another process counts what `operations` left out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut status = String::new();
    while std::time::Instant::now() < deadline {
        status = String::from_utf8_lossy(&ws.run(&["status", "--json"]).stdout).into_owned();
        if status.contains("\"delete\": 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let json: serde_json::Value = serde_json::from_str(&status).expect("status --json");
    let skipped = &json["tasks"]["shaped"]["skipped"];
    assert_eq!(skipped["update"], 1, "{status}");
    assert_eq!(skipped["delete"], 1, "{status}");
    // verify compares through the routes: filtered rows, selected and
    // renamed columns, renamed tables. (audit skips updates and deletes by
    // design, so it differs.)
    let out = ws.run(&["verify", "--json"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("\"sales.orders\""), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_str(&report).expect("verify --json");
    let tables = json["tasks"][0]["tables"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let result = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == name)
            .map(|t| t["status"].clone())
    };
    assert_eq!(result("sales.orders"), Some("ok".into()), "{report}");
    assert_eq!(result("sales.items"), Some("ok".into()), "{report}");
    stop_gracefully(&ws, &mut apply, "stream");

    // Destroy removes what pgsync created under the new names too.
    expect_exit(
        &ws.run(&["destroy", "--auto-approve", "--drop-destination"]),
        0,
    );
    assert_eq!(
        column(
            &dst,
            "select count(*)::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname in ('reporting', 'sales') and c.relkind in ('r', 'v')"
        )
        .await,
        [Some("0".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_filters_and_column_lists_are_refused_at_plan_time() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", SETUP]).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            r#"table "sales.orders" { where = "amount >> 0" }"#,
            "sales.orders: `where = \"amount >> 0\"`: operator does not exist: numeric >> integer",
        ),
        (
            r#"table "sales.orders" { where = "amont > 0" }"#,
            "sales.orders: `where = \"amont > 0\"`: column \"amont\" does not exist",
        ),
        (
            r#"table "sales.orders" { where = "amount > random()" }"#,
            "functions in index expression must be marked IMMUTABLE: a filter may call only \
             immutable functions",
        ),
        (
            r#"table "sales.orders" { where = "id in (select id from sales.items)" }"#,
            "cannot use subquery in check constraint: a filter sees the row alone",
        ),
        (
            r#"table "sales.orders" { columns = ["customer", "amount", "nope"] }"#,
            "sales.orders has no column \"nope\"; sales.orders: `columns` leaves out key \
             column(s) id, which the stream needs to find rows",
        ),
        (
            "table \"sales.orders\" { rename = \"sales.items\" }\n  table \"sales.items\" {}",
            "sales.items and sales.orders both land in sales.items",
        ),
        // SQL trying to leave the expression never runs.
        (
            r#"table "sales.orders" { where = "true)); commit; drop table sales.items; select ((true" }"#,
            "its parentheses or quotes do not balance; a filter is one boolean expression",
        ),
        (
            "table \"sales.orders\" {\n    columns = [\"id\", \"customer\", \"amount\"]\n    column_map = { customer = \"amount\" }\n  }",
            "sales.orders: columns customer and amount would both be named \"amount\" on the destination",
        ),
    ];
    for (body, words) in cases {
        let ws = Workspace::new(
            &pair.source,
            &pair.destination,
            "bad",
            &format!("  sync_types = [\"schema\", \"full\", \"incremental\"]\n  {body}"),
        );
        let out = ws.run(&["plan"]);
        assert_eq!(out.status.code(), Some(1), "{body}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{body}: want {words:?} in:\n{err}");
        assert!(err.contains("precheck failed for task \"bad\""), "{err}");
    }
    // Nothing was created on either side, nothing was dropped.
    let src = connect(&pair.source, "app").await;
    assert_eq!(
        column(&src, "select count(*)::text from sales.items").await,
        [Some("10".to_owned())]
    );
    assert_eq!(
        column(&src, "select count(*)::text from pg_replication_slots").await,
        [Some("0".to_owned())]
    );
}

const RESELECT_SETUP: &str = "
create schema sales; create schema extra;
create table sales.orders (id int primary key, amount int not null, note text);
insert into sales.orders select g, g - 20, 'o' || g from generate_series(1, 40) g;
create table sales.items (id int primary key, label text);
insert into sales.items select g, 'i' || g from generate_series(1, 10) g;
create table sales.customers (id int primary key, name text);
insert into sales.customers select g, 'c' || g from generate_series(1, 10) g;
create table extra.t (id int primary key, v text);
insert into extra.t select g, 'e' || g from generate_series(1, 25) g;
";

fn task_body(selection: &str) -> String {
    format!("  sync_types = [\"schema\", \"full\", \"incremental\"]\n{selection}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_selection_copies_only_the_tables_concerned() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", RESELECT_SETUP]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "moving",
        &task_body("  schema \"sales\" {}"),
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    // A row only the destination has: it survives unless the table is
    // copied again.
    exec(
        &dst,
        "insert into sales.customers values (1000, 'destination only')",
    )
    .await;

    // New selection: extra.t added, sales.orders filtered (re-copied),
    // sales.items excluded (no longer streamed), customers untouched.
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        std::fs::read_to_string(ws.path().join("pgsync.hcl"))
            .unwrap()
            .replace(
                "  schema \"sales\" {}",
                "  schema \"sales\" { exclude_tables = [\"items\"] }\n  \
                 table \"sales.orders\" { where = \"amount > 0\" }\n  table \"extra.t\" {}",
            ),
    )
    .unwrap();
    // Writes while pgsync is stopped: the stream or the new copies must
    // bring each exactly once.
    for sql in [
        "insert into sales.orders values (100, 5, 'while stopped'), (101, -5, 'out')",
        "update sales.orders set amount = 50 where id = 1",
        "insert into extra.t values (100, 'while stopped')",
        "insert into sales.customers values (100, 'while stopped')",
        "insert into sales.items values (100, 'while stopped')",
    ] {
        exec(&src, sql).await;
    }
    let plan = ws.run(&["plan", "--detailed-exitcode"]);
    let plan_text = expect_exit(&plan, 2);
    for words in [
        "# task.moving will be updated in place; only the tables below are touched, the others keep streaming:",
        "#   -/+ schema \"sales\": exclude_tables or rename changed; forces re-copy of the tables concerned",
        "#   -/+ table \"sales.orders\": settings added; forces re-copy of this table",
        "#   + table \"extra.t\": created and copied alone",
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ] {
        assert!(plan_text.contains(words), "want {words:?} in:\n{plan_text}");
    }
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "moving");
    for sql in [
        "insert into sales.orders values (102, 7, 'streamed'), (103, -7, 'out')",
        "update sales.orders set amount = -1 where id = 30",
        "insert into extra.t values (101, 'streamed')",
        "update extra.t set v = 'changed' where id = 1",
        "insert into sales.customers values (101, 'streamed')",
        "insert into sales.items values (101, 'not streamed')",
    ] {
        exec(&src, sql).await;
    }
    let same = |sql_src: &'static str, sql_dst: &'static str| {
        let (src, dst) = (&src, &dst);
        async move { column(src, sql_src).await == column(dst, sql_dst).await }
    };
    let orders_src =
        "select id || ':' || amount || ':' || note from sales.orders where amount > 0 order by id";
    let orders_dst = "select id || ':' || amount || ':' || note from sales.orders order by id";
    let extra = "select id || ':' || v from extra.t order by id";
    let customers_src = "select id || ':' || name from sales.customers \
                         union all select '1000:destination only' order by 1";
    let customers_dst = "select id || ':' || name from sales.customers order by 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = (
            same(orders_src, orders_dst).await,
            same(extra, extra).await,
            same(customers_src, customers_dst).await,
        );
        if state == (true, true, true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not converged (orders filtered, extra.t added, customers untouched): {state:?}\n\
             orders src {:?}\n orders dst {:?}\n customers dst {:?}",
            column(&src, orders_src).await,
            column(&dst, orders_dst).await,
            column(&dst, customers_dst).await,
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // sales.items stopped: kept on the destination as it was, without the
    // rows written after it left the selection.
    assert_eq!(
        column(&dst, "select count(*) || ':' || max(id) from sales.items").await,
        [Some("10:10".to_owned())]
    );
    // Only the temporary slot's work is gone: one slot remains.
    assert_eq!(
        column(
            &src,
            "select string_agg(slot_name, ',') from pg_replication_slots"
        )
        .await,
        [Some("dts_sync_moving".to_owned())]
    );
    stop_gracefully(&ws, &mut apply, "moving");
    // An `operations` change is an in-place update of the task.
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        std::fs::read_to_string(ws.path().join("pgsync.hcl"))
            .unwrap()
            .replace(
                "table \"extra.t\" {}",
                "table \"extra.t\" { operations = [\"insert\"] }",
            ),
    )
    .unwrap();
    let plan_text = expect_exit(&ws.run(&["plan", "--detailed-exitcode"]), 2);
    assert!(
        plan_text.contains("# task.moving will be updated in place\n"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("+ table \"extra.t\" { operations = [\"insert\"] }"),
        "{plan_text}"
    );
    // A table removed from the selection: kept on the destination unless
    // apply is told to drop it.
    std::fs::write(
        ws.path().join("pgsync.hcl"),
        std::fs::read_to_string(ws.path().join("pgsync.hcl"))
            .unwrap()
            .replace("table \"extra.t\" { operations = [\"insert\"] }", ""),
    )
    .unwrap();
    let plan_text = expect_exit(&ws.run(&["plan", "--detailed-exitcode"]), 2);
    assert!(
        plan_text.contains(
            "#   - table \"extra.t\": no longer streamed; destination tables kept (apply \
             --drop-removed-tables drops them)"
        ),
        "{plan_text}"
    );
    expect_exit(
        &ws.run(&[
            "apply",
            "--auto-approve",
            "--exit-when-caught-up",
            "--drop-removed-tables",
        ]),
        0,
    );
    assert_eq!(
        column(&dst, "select count(*)::text from pg_class where relname = 't' and relnamespace = 'extra'::regnamespace").await,
        [Some("0".to_owned())]
    );
    assert_eq!(
        column(
            &src,
            "select count(*)::text from pg_publication_tables where tablename = 't'"
        )
        .await,
        [Some("0".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_and_name_case_rename_schemas_tables_and_columns() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", r#"create schema "Staging"; create schema tenant_7;
                       create table "Staging"."TmpUsers" ("UserId" int primary key, "FullName" text);
                       insert into "Staging"."TmpUsers" select g, 'u' || g from generate_series(1, 10) g;
                       create table "Staging"."Keep" (id int primary key, "Note" text);
                       insert into "Staging"."Keep" values (1, 'k');
                       create table tenant_7.orders (id int primary key, v int);
                       insert into tenant_7.orders select g, g from generate_series(1, 5) g;"#],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "mapped",
        "  name_case = \"lower\"\n  schema \"Staging\" {}\n  schema \"tenant_7\" {}\n  \
         mapping {\n    match = \"Staging.Tmp*\"\n    rename = \"scratch.*\"\n  }\n  \
         mapping {\n    match = \"tenant_*\"\n    rename = \"t*\"\n  }",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "mapped");
    exec(
        &src,
        r#"insert into "Staging"."TmpUsers" values (11, 'streamed')"#,
    )
    .await;
    exec(&src, r#"update "Staging"."Keep" set "Note" = 'changed'"#).await;
    exec(&src, "insert into tenant_7.orders values (6, 6)").await;
    let checks = [
        // The mapping's name is taken verbatim; its columns are lower-cased.
        (
            "select count(*) || ':' || max(\"userid\") || ':' || max(fullname) from \"scratch\".\"Users\"",
            "11:11:u9",
        ),
        // Not matched by a mapping: schema and table lower-cased.
        ("select note from staging.keep", "changed"),
        // A schema-level mapping moves the whole schema.
        ("select count(*)::text from t7.orders", "6"),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (sql, want) in checks {
        loop {
            let got = column(&dst, sql).await;
            if got == [Some(want.to_owned())] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}: want {want:?}, got {got:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    stop_gracefully(&ws, &mut apply, "mapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_tables_ignore_keeps_rows_in_the_copy_and_overwrites_in_the_stream() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, a text, b text, c int);
                     insert into t select g, 'a' || g, 'b' || g, g from generate_series(1, 10) g;",
            ],
        )
        .unwrap();
    // The destination has the table already, with other columns and rows.
    pair.destination
        .psql(
            "app",
            &[
                "-c",
                "create table t (id int primary key, a text, b text, extra text default 'dst');
                     insert into t (id, a, b) values (1, 'kept', 'kept'), (2, 'kept', 'kept'),
                                                     (11, 'dst only', 'dst only');",
            ],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "merge",
        "  conflicting_tables = \"ignore\"\n  table \"public.t\" {}",
    );
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    assert!(
        text(&out).contains("public.t: the existing destination table lacks column(s) c; their values are not copied (conflicting_tables = \"ignore\")"),
        "{}",
        text(&out)
    );
    let rows = "select id || ':' || a || ':' || b || ':' || extra from t order by id";
    let mut want: Vec<Option<String>> = vec![
        Some("1:kept:kept:dst".into()),
        Some("2:kept:kept:dst".into()),
    ];
    want.extend((3..=10).map(|g| Some(format!("{g}:a{g}:b{g}:dst"))));
    want.push(Some("11:dst only:dst only:dst".into()));
    assert_eq!(
        column(&dst, rows).await,
        want,
        "the copy keeps existing keys"
    );

    let mut apply = ws.spawn(&["apply", "--auto-approve"], "merge");
    exec(&src, "insert into t values (11, 'from source', 'x', 11)").await;
    exec(&src, "update t set a = 'updated' where id = 1").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let want_11 = Some("11:from source:x:dst".to_owned());
    while column(&dst, rows).await.last() != Some(&want_11) && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let got = column(&dst, rows).await;
    assert_eq!(got.last(), Some(&want_11), "the stream overwrites: {got:?}");
    // An UPDATE carries the whole source row: the row becomes the source's.
    assert_eq!(got[0], Some("1:updated:b1:dst".into()), "{got:?}");
    stop_gracefully(&ws, &mut apply, "merge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_on_renamed_and_reshaped_tables_is_replayed_under_their_new_names() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &["-c", "create schema sales;
                     create table sales.orders (id int primary key, customer text, amount int, secret text);
                     insert into sales.orders select g, 'c' || g, g, 's' from generate_series(1, 20) g;
                     create table sales.items (id int primary key, label text);
                     insert into sales.items select g, 'i' || g from generate_series(1, 5) g;"],
        )
        .unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "ddl_renamed",
        "  schema \"sales\" { rename = \"reporting\" }\n  \
         table \"sales.orders\" {\n    rename = \"reporting.purchases\"\n    \
         columns = [\"id\", \"customer\", \"amount\"]\n    column_map = { customer = \"client\" }\n  }",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    let mut apply = ws.spawn(&["apply", "--auto-approve"], "ddl");
    for sql in [
        "update sales.orders set amount = amount where id = 20",
        // Not among `columns`: added, then dropped again on the destination.
        "alter table sales.orders add column note text",
        "insert into sales.orders values (21, 'c21', 21, 's', 'a note')",
        "alter table sales.orders alter column amount type bigint",
        // An unselected column, absent on the destination, is dropped.
        "alter table sales.orders drop column secret",
        "insert into sales.orders values (22, 'c22', 22, 'no secret')",
        "alter table sales.orders add constraint amount_positive check (amount > 0)",
        "create index orders_customer on sales.orders (customer)",
        "update sales.orders set customer = 'renamed column' where id = 1",
        "alter table sales.items add column qty int default 1",
        "create table sales.newtab (id int primary key, v text)",
        "insert into sales.newtab values (1, 'x')",
        "insert into sales.items values (6, 'i6', 7)",
    ] {
        exec(&src, sql).await;
    }
    let checks = [
        (
            "select string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' order by attnum) \
             from pg_attribute where attrelid = 'reporting.purchases'::regclass and attnum > 0 \
             and not attisdropped",
            "id:integer,client:text,amount:bigint",
        ),
        (
            "select string_agg(conname, ',') from pg_constraint \
             where conrelid = 'reporting.purchases'::regclass and contype = 'c'",
            "amount_positive",
        ),
        (
            "select string_agg(indexrelid::regclass::text, ',' order by 1) from pg_index \
             where indrelid = 'reporting.purchases'::regclass and not indisprimary",
            "reporting.orders_customer",
        ),
        (
            "select count(*) || ':' || max(id) || ':' || (select client from reporting.purchases where id = 1) \
             from reporting.purchases",
            "22:22:renamed column",
        ),
        (
            "select string_agg(id || '=' || qty, ',' order by id) from reporting.items",
            "1=1,2=1,3=1,4=1,5=1,6=7",
        ),
        (
            "select string_agg(id || v, ',') from reporting.newtab",
            "1x",
        ),
        (
            "select count(*)::text from pg_namespace where nspname = 'sales'",
            "0",
        ),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (sql, want) in checks {
        loop {
            let got = column(&dst, sql).await;
            if got == [Some(want.to_owned())] {
                break;
            }
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(ws.log("ddl", "err")).unwrap_or_default();
                panic!("{sql}: want {want:?}, got {got:?}\n{log}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    stop_gracefully(&ws, &mut apply, "ddl");
}
