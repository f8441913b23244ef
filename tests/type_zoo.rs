//! The type zoo (testdata/schema/type_zoo.sql): every object kind and value
//! shape the sample databases lack arrives identically through the schema
//! sync, the snapshot and the stream.

use crate::schema_sync::{assert_same, fingerprint};
use crate::support::cli::{Workspace, expect_exit};
use crate::support::pg::{Pair, column, connect, exec};

const SCHEMA: &str = r#""Zoo ""Mixed"" Çase""#;

/// Every row of every zoo table as text, sorted, with the session settings
/// pgsync pins, so a single differing bit shows.
async fn rows(client: &tokio_postgres::Client) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for table in [
        "every_type",
        "keyless_full",
        r#""Ünïcode ""Table""""#,
        "events",
        "booking",
    ] {
        out.extend(
            column(
                client,
                &format!(
                    "set datestyle = ISO; set intervalstyle = postgres; set extra_float_digits = 3; set timezone = UTC;
                     select coalesce(string_agg(r, E'\\n' order by r), '') from (select t::text r from {SCHEMA}.{table} t) s"
                ),
            )
            .await,
        );
    }
    out
}

fn strip(lines: Vec<String>) -> Vec<String> {
    lines.into_iter().filter(|l| !l.contains("dts_")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_zoo_round_trips_through_schema_snapshot_and_stream() {
    let pair = Pair::start();
    let zoo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/schema/type_zoo.sql");
    pair.source
        .psql("app", &["-f", zoo.to_str().unwrap()])
        .expect("load the type zoo");
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "zoo",
        "  schema \"Zoo \\\"Mixed\\\" Çase\" {}",
    );
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    assert_eq!(rows(&dst).await, rows(&src).await, "after the snapshot");

    // The same values again, through the stream: inserts copying every row,
    // updates touching every column, deletes by key and by whole row.
    exec(
        &src,
        &format!(
            "set search_path = {SCHEMA}, public;
             insert into every_type (j, jb, iv, ip, net, mac, mac8, b, vb, x, tsv, tsq, ir, nr, tr, dr, imr, fr, m, ci, h, l, e, p,
                                     md, moods, pairs, doms, n, f4, f8, ts, tz, d, t, ttz, bytes, ch, vc)
             select j, jb, iv, ip, net, mac, mac8, b, vb, x, tsv, tsq, ir, nr, tr, dr, imr, fr, m, ci, h, l, e, p,
                    md, moods, pairs, doms, n, f4, f8, ts, tz, d, t, ttz, bytes, ch, vc from every_type;
             update every_type set jb = jb || '{{\"new\": true}}', h = h || 'z=>1', n = n + 1, moods = moods || 'ok'::mood
              where id = 1;
             delete from every_type where id = 2;
             update keyless_full set b = '{{\"k\": 1}}' where a is null;
             delete from keyless_full where ctid = (select min(ctid) from keyless_full where a = 'x');
             update events set region = 'us' where id = 1;
             insert into events values (5, 'eu', '2024-12-31', '{{\"x\": [1, {{}}]}}');
             update \"Ünïcode \"\"Table\"\"\" set \"Çolumn\" = 'ẞ' where \"Çolumn\" = 'ß';"
        ),
    )
    .await;
    expect_exit(
        &ws.run(&["apply", "--auto-approve", "--exit-when-caught-up"]),
        0,
    );
    assert_eq!(rows(&dst).await, rows(&src).await, "after streaming");
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}
