//! `pgsync demo`: the main job end to end on two throwaway local clusters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::cluster::LocalCluster;
use crate::config::{self, Inputs};
use crate::engine::{self, ApplyOptions, Recorder};
use crate::model::DesiredState;
use crate::pg::{Connected, compare, connect};
use crate::state::StateStore;

const SEED: &str = "
create table customers (id serial primary key, name text not null, email text unique, created_at timestamptz not null default now());
create table orders (id bigserial primary key, customer_id int not null references customers(id),
                     amount numeric(12,2) not null check (amount >= 0), note text, placed_on date not null default current_date);
create index orders_customer on orders (customer_id);
create view big_orders as select * from orders where amount > 900;
insert into customers (name, email) select 'customer ' || g, 'c' || g || '@example.com' from generate_series(1, 1000) g;
";

fn seed_orders(rows: u32) -> String {
    format!(
        "insert into orders (customer_id, amount, note)
         select 1 + g % 1000, (g * 37 % 100000) / 100.0, repeat(md5(g::text), 1 + g % 4)
           from generate_series(1, {rows}) g;"
    )
}

const WORKLOAD: &str = "
insert into customers (name, email) select 'late ' || g, md5(random()::text) || '@example.com' from generate_series(1, 50) g;
update orders set amount = amount + 1 where id % 97 = 0;
delete from orders where id % 101 = 0;
insert into orders (customer_id, amount, note) select 1 + g % 1000, 5, 'streamed' from generate_series(1, 500) g;
";

fn step(text: &str) {
    println!("\n==> {text}");
}

async fn digests(conn: &Connected) -> Result<Vec<(String, i64, String)>, Error> {
    let mut out = Vec::new();
    for t in compare::tables_of(conn, "public").await? {
        let (n, h) = compare::table_digest(conn, &t).await?;
        out.push((t.to_string(), n, h));
    }
    Ok(out)
}

pub(super) async fn run(rows: u32) -> Result<(), Error> {
    step("starting two throwaway PostgreSQL clusters (source and destination)");
    let source = LocalCluster::start(&[])?;
    let destination = LocalCluster::start(&[])?;
    println!(
        "source on 127.0.0.1:{}, destination on 127.0.0.1:{}",
        source.port(),
        destination.port()
    );
    source.psql("postgres", &["-c", "create database shop"])?;
    destination.psql("postgres", &["-c", "create database shop"])?;
    step(&format!(
        "filling the source: 1000 customers, {rows} orders"
    ));
    source.psql("shop", &["-c", SEED])?;
    source.psql("shop", &["-c", &seed_orders(rows)])?;

    let work = tempfile::tempdir().map_err(|source| Error::Io {
        doing: "create",
        path: "temp dir".into(),
        source,
    })?;
    let hcl = format!(
        r#"endpoint "src" {{
  host     = "127.0.0.1"
  port     = {}
  database = "shop"
  user     = "postgres"
}}

endpoint "dst" {{
  host     = "127.0.0.1"
  port     = {}
  database = "shop"
  user     = "postgres"
}}

task "demo" {{
  source      = endpoint.src
  destination = endpoint.dst
  sync_types  = ["schema", "full", "incremental"]

  schema "public" {{}}
}}
"#,
        source.port(),
        destination.port()
    );
    let file = work.path().join("pgsync.hcl");
    std::fs::write(&file, &hcl).map_err(|e| Error::Io {
        doing: "write",
        path: file.clone(),
        source: e,
    })?;
    println!("configuration {}:\n\n{hcl}", file.display());

    let desired: DesiredState = config::load_dir(work.path(), &Inputs::default())?;
    let store = StateStore::open(&work.path().join(".pgsync"))?;
    let recorded = store.load()?;
    step("pgsync plan");
    let plan = crate::plan::plan(&desired, &recorded, &crate::plan::Observed::default());
    print!("{}", super::output::plan_text(&plan));

    step("pgsync apply (schema, full copy, then streaming)");
    let recorder = Recorder::new(store)?;
    let status_file = work.path().join(".pgsync/status.json");
    let options = ApplyOptions {
        status_file: Some(status_file.clone()),
        ..ApplyOptions::default()
    };
    let cancel = CancellationToken::new();
    let apply = {
        let (desired, plan, recorder, options, cancel) = (
            desired.clone(),
            plan.clone(),
            recorder.clone(),
            options.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            let report: engine::Reporter = Arc::new(super::output::print_event);
            engine::apply(&desired, &plan, &recorder, &options, report, &cancel).await
        })
    };

    let src = connect(&desired.endpoints["src"]).await?;
    let dst = connect(&desired.endpoints["dst"]).await?;
    wait_for(&apply, || async {
        recorder.task("demo").is_some_and(|r| r.initial_sync_done())
    })
    .await?;

    step("writing to the source while pgsync streams");
    for round in 1..=3 {
        src.client
            .batch_execute(WORKLOAD)
            .await
            .map_err(src.err("run workload"))?;
        if apply.is_finished() {
            eprintln!("{}", destination.server_log());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Some(s) = engine::read_status_file(&status_file)
            && let Some(t) = s.tasks.get("demo")
        {
            println!(
                "round {round}: applied LSN {}, lag {} bytes, {:.1} s, {} transactions applied",
                t.applied_lsn.clone().unwrap_or_default(),
                t.lag_bytes.unwrap_or(0),
                t.lag_seconds.unwrap_or(0.0),
                t.transactions_applied
            );
        }
    }

    step("waiting until both sides are equal (row counts and an md5 per table)");
    let expected = digests(&src).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = digests(&dst).await?;
        if got == expected {
            for (t, n, h) in &got {
                println!("{t:<20} {n:>8} rows  md5 {h}  (identical on both sides)");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(t) =
                engine::read_status_file(&status_file).and_then(|s| s.tasks.get("demo").cloned())
            {
                println!(
                    "caught up: applied LSN {}, lag {} bytes, {} transactions applied",
                    t.applied_lsn.unwrap_or_default(),
                    t.lag_bytes.unwrap_or(0),
                    t.transactions_applied
                );
            }
            break;
        }
        if Instant::now() > deadline || apply.is_finished() {
            cancel.cancel();
            return Err(Error::Demo(format!(
                "destination differs from source after 120 s: {got:?} vs {expected:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    step("stopping apply (as Ctrl-C would) and running pgsync destroy");
    cancel.cancel();
    apply.await.expect("apply task does not panic")?;
    let record = recorder.task("demo").expect("task recorded");
    let report: engine::Reporter = Arc::new(super::output::print_event);
    engine::destroy_task(&desired, &record, &recorder, false, &report).await?;
    let left: i64 = src
        .client
        .query_one(
            "select (select count(*) from pg_replication_slots) + (select count(*) from pg_publication)
                  + (select count(*) from pg_class where relname like 'dts\\_%')",
            &[],
        )
        .await
        .map_err(src.err("count leftovers"))?
        .get(0);
    println!("pgsync objects left on the source: {left}");
    if left != 0 {
        return Err(Error::Demo(format!(
            "{left} pgsync objects left on the source"
        )));
    }
    drop(dst);
    step("done: the clusters are removed");
    Ok(())
}

async fn wait_for<F, Fut>(
    apply: &tokio::task::JoinHandle<Result<(), engine::EngineError>>,
    mut ready: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready().await {
        if apply.is_finished() || Instant::now() > deadline {
            return Err(Error::Demo("the initial sync did not finish".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
