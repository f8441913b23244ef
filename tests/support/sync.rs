//! Comparing source and destination.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::pg::column;

/// `table → (rows, md5 of sorted row texts)` for every ordinary table of
/// `public` except pgsync's `dts_*` helpers.
pub async fn digests(client: &Client) -> Vec<(String, String)> {
    let tables = column(
        client,
        "select quote_ident(c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind = 'r' and c.relname not like 'dts\\_%' order by 1",
    )
    .await;
    let mut out = Vec::new();
    for t in tables.into_iter().flatten() {
        // The table may be dropped between listing and reading it (DDL being
        // replayed): record that instead of failing, the next round sees it.
        let digest = client
            .simple_query(&format!(
                "select count(*) || ' ' || md5(coalesce(string_agg(r, E'\\n' order by r), ''))
                   from (select t::text r from public.{t} t) s"
            ))
            .await
            .ok()
            .and_then(|msgs| {
                msgs.into_iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
            })
            .unwrap_or_else(|| "vanished while being read".to_owned());
        out.push((t, digest));
    }
    out
}

/// Waits (up to `secs`) until both sides' digests are equal; panics with
/// the differing tables otherwise.
pub async fn assert_converges(source: &Client, destination: &Client, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let expected = digests(source).await;
    assert!(!expected.is_empty(), "{what}: the source has no tables");
    loop {
        let got = digests(destination).await;
        if got == expected {
            return;
        }
        if Instant::now() > deadline {
            let diff: Vec<String> = expected
                .iter()
                .filter(|e| !got.contains(e))
                .map(|(t, v)| {
                    let d = got
                        .iter()
                        .find(|(g, _)| g == t)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("missing");
                    format!("{t}: source {v}, destination {d}")
                })
                .collect();
            panic!(
                "{what}: destination differs after {secs} s:\n{}",
                diff.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
