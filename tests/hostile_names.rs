//! Hostile names end to end: schema, table, column, type and enum-label
//! names with quotes, double quotes, backslashes, spaces, dots, semicolons,
//! non-ASCII characters and PostgreSQL's 63-byte limit, plus a task name
//! longer than a slot name may be.

use crate::support::cli::{Workspace, expect_exit};
use crate::support::pg::{Pair, column, connect, exec};

const SCHEMA: &str = r#""Weird ""Schema"" ; x.y""#;

fn setup() -> String {
    let long_table = "t".repeat(63);
    let long_column = "é".repeat(31); // 62 bytes
    format!(
        r#"
create schema {SCHEMA};
create type {SCHEMA}."mood ""q""" as enum ('it''s', 'back\slash', 'sp ace', 'ünï', 'semi;colon', 'dot.ted');
create table {SCHEMA}."Tâble.With \ Stuff" (
    "Col ""1""" int primary key,
    "sémi;col" text,
    "m" {SCHEMA}."mood ""q""",
    "select" text default 'it''s; drop table x; --');
create table {SCHEMA}."{long_table}" (id int primary key, "{long_column}" text);
insert into {SCHEMA}."Tâble.With \ Stuff" values (1, 'a''b', 'it''s', 'x'), (2, E'back\\slash', 'ünï', 'y');
insert into {SCHEMA}."{long_table}" values (1, 'long');
"#
    )
}

async fn rows(client: &tokio_postgres::Client) -> Vec<Option<String>> {
    column(
        client,
        &format!(
            r#"select string_agg(r, ' | ' order by r) from (
                 select t::text r from {SCHEMA}."Tâble.With \ Stuff" t
                 union all select t::text from {SCHEMA}."{}" t) s"#,
            "t".repeat(63)
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_and_a_long_task_name_sync_end_to_end() {
    let pair = Pair::start();
    pair.source.psql("app", &["-c", &setup()]).unwrap();
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    // The HCL label is the catalog spelling: quotes escaped for HCL only.
    let task = format!("hostile_{}", "x".repeat(70));
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        &task,
        "  schema \"Weird \\\"Schema\\\" ; x.y\" {}",
    );
    let out = ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]);
    expect_exit(&out, 0);
    // The slot name is cut to PostgreSQL's 63-byte limit.
    let slot = format!("dts_sync_{task}");
    let slot = &slot[..63];
    assert_eq!(
        column(&src, "select slot_name::text from pg_replication_slots").await,
        [Some(slot.to_owned())]
    );
    assert_eq!(rows(&dst).await, rows(&src).await);

    // Streamed changes, values with every awkward character, and DDL.
    exec(
        &src,
        &format!(
            r#"insert into {SCHEMA}."Tâble.With \ Stuff" values (3, 'semi;colon "dq" ''sq'' \ bs', 'semi;colon', 'z');
               update {SCHEMA}."Tâble.With \ Stuff" set "m" = 'dot.ted', "select" = 'x";--' where "Col ""1""" = 1;
               delete from {SCHEMA}."Tâble.With \ Stuff" where "Col ""1""" = 2;
               alter table {SCHEMA}."Tâble.With \ Stuff" add column "new ""col"" ;" text default 'd;e';
               insert into {SCHEMA}."Tâble.With \ Stuff" ("Col ""1""", "new ""col"" ;") values (4, 'n"ew');
               alter type {SCHEMA}."mood ""q""" add value 'new''label';"#
        ),
    )
    .await;
    exec(
        &src,
        &format!(
            r#"update {SCHEMA}."Tâble.With \ Stuff" set "m" = 'new''label' where "Col ""1""" = 4"#
        ),
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(rows(&dst).await, rows(&src).await);
    assert_eq!(
        column(
            &dst,
            &format!(
                r#"select "new ""col"" ;" from {SCHEMA}."Tâble.With \ Stuff" where "Col ""1""" = 4"#
            )
        )
        .await,
        [Some("n\"ew".to_owned())]
    );
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
    assert_eq!(
        column(&src, "select count(*) from pg_replication_slots").await,
        [Some("0".to_owned())]
    );
}
