//! The commands, composed from config, state, plan and engine.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::{Args, Command, Outcome, StateCommand, output};
use crate::Error;
use crate::config::{self, Inputs};
use crate::engine::{self, ApplyOptions, Recorder};
use crate::model::DesiredState;
use crate::pg::{admin, connect};
use crate::plan::{self, Observed, ObservedTask, Plan, TaskShape};
use crate::state::{RecordedState, StateError, StateStore};

struct Context {
    dir: PathBuf,
    state_dir: PathBuf,
    inputs: Inputs,
}

impl Context {
    fn new(args: &Args) -> Result<Context, Error> {
        let dir = args.chdir.clone().unwrap_or_else(|| PathBuf::from("."));
        let state_dir = args.state.clone().unwrap_or_else(|| dir.join(".pgsync"));
        let mut pairs = Vec::new();
        for f in &args.var_files {
            pairs.extend(config::read_var_file(f)?);
        }
        for v in &args.vars {
            let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
            pairs.push((k.to_owned(), val.to_owned()));
        }
        Ok(Context {
            dir,
            state_dir,
            inputs: Inputs::from_process(&pairs),
        })
    }

    fn desired(&self) -> Result<DesiredState, Error> {
        Ok(config::load_dir(&self.dir, &self.inputs)?)
    }

    fn store(&self) -> Result<StateStore, Error> {
        Ok(StateStore::open(&self.state_dir)?)
    }

    fn status_file(&self) -> PathBuf {
        self.state_dir.join("status.json")
    }
}

pub(super) async fn dispatch(args: Args) -> Result<Outcome, Error> {
    if let Command::Demo { rows } = &args.command {
        return super::demo::run(*rows).await.map(|()| Outcome::Success);
    }
    let ctx = Context::new(&args)?;
    match args.command {
        Command::Validate => {
            let d = ctx.desired()?;
            println!(
                "Success! The configuration is valid ({} endpoints, {} tasks).",
                d.endpoints.len(),
                d.tasks.len()
            );
            Ok(Outcome::Success)
        }
        Command::Plan {
            out,
            detailed_exitcode,
            json,
        } => cmd_plan(&ctx, out.as_deref(), detailed_exitcode, json).await,
        Command::Apply {
            planfile,
            auto_approve,
            exit_when_caught_up,
            jobs,
            drop_removed_tables,
        } => {
            cmd_apply(
                &ctx,
                planfile.as_deref(),
                auto_approve,
                ApplyOptions {
                    jobs: jobs.map(usize::from),
                    exit_when_caught_up,
                    drop_removed_tables,
                    ..ApplyOptions::default()
                },
            )
            .await
        }
        Command::Destroy {
            auto_approve,
            drop_destination,
        } => cmd_destroy(&ctx, auto_approve, drop_destination).await,
        Command::Status { json } => cmd_status(&ctx, json).await,
        Command::Precheck => cmd_precheck(&ctx).await,
        Command::Verify {
            json,
            rows,
            jobs,
            timeout,
        } => cmd_verify(&ctx, json, rows, jobs.into(), timeout).await,
        Command::State { command } => cmd_state(&ctx, command),
        Command::Demo { .. } => unreachable!("handled above"),
    }
}

/// Asks the servers about every recorded task (the "refresh").
async fn observe(desired: &DesiredState, recorded: &RecordedState) -> Result<Observed, Error> {
    let mut observed = Observed::default();
    for (name, record) in &recorded.tasks {
        let Some(slot) = &record.slot else { continue };
        let endpoint = match desired.endpoints.get(&record.source_name) {
            Some(e) if crate::state::EndpointRecord::from(e) == record.source => e.clone(),
            _ => continue,
        };
        let src = connect(&endpoint).await?;
        let facts = admin::slot_facts(&src, slot).await?;
        observed.tasks.insert(
            name.clone(),
            ObservedTask {
                slot_exists: Some(facts.is_some()),
                slot_lost: facts.is_some_and(|f| f.lost),
            },
        );
    }
    Ok(observed)
}

/// A saved plan: the plan plus a digest of the configuration it was made
/// from (task shapes only: no passwords).
#[derive(Debug, Serialize, Deserialize)]
struct PlanFile {
    format: u32,
    config_digest: String,
    plan: Plan,
}

fn config_digest(desired: &DesiredState) -> String {
    let shapes: Vec<(&String, Option<TaskShape>)> = desired
        .tasks
        .iter()
        .map(|(n, t)| (n, TaskShape::from_spec(t, desired)))
        .collect();
    let json = serde_json::to_vec(&shapes).expect("shapes serialize");
    hex::encode(sha2::Sha256::digest(json))
}

fn locked_hint(err: Error, ctx: &Context) -> Error {
    if let Error::State(StateError::Locked { pid: Some(pid), .. }) = &err
        && let Some(status) = engine::read_status_file(&ctx.status_file())
        && status.pid == *pid
    {
        eprintln!("a running apply (pid {pid}) holds the state; its last report:");
        eprint!("{}", output::status_text(&status));
    }
    err
}

async fn make_plan(
    ctx: &Context,
) -> Result<(DesiredState, RecordedState, Plan, StateStore), Error> {
    let desired = ctx.desired()?;
    let store = ctx.store().map_err(|e| locked_hint(e, ctx))?;
    let recorded = store.load()?;
    let observed = observe(&desired, &recorded).await?;
    let plan = plan::plan(&desired, &recorded, &observed);
    check_routes(&desired, &plan).await?;
    Ok((desired, recorded, plan, store))
}

/// Checks `columns`, `column_map`, renames and `where` filters of the tasks
/// the plan creates or replaces against the source, so that a wrong filter
/// is reported, with its table, before anything is created.
async fn check_routes(desired: &DesiredState, plan: &Plan) -> Result<(), Error> {
    for action in &plan.actions {
        if !matches!(
            action,
            plan::Action::Create { .. }
                | plan::Action::Replace { .. }
                | plan::Action::Reselect { .. }
        ) {
            continue;
        }
        let Some(spec) = desired.tasks.get(action.task()) else {
            continue;
        };
        let customized = !spec.mappings.is_empty()
            || spec.name_case != crate::model::NameCase::Default
            || spec.objects.iter().any(|o| match o {
                crate::model::ObjectSelection::Schema { rename, .. } => rename.is_some(),
                crate::model::ObjectSelection::Table { options, .. } => {
                    options.rename.is_some()
                        || options.columns.is_some()
                        || !options.column_map.is_empty()
                        || options.filter.is_some()
                }
            });
        let Some(source) = desired.endpoints.get(&spec.source) else {
            continue;
        };
        if !customized {
            continue;
        }
        let src = connect(source).await?;
        let (tables, _) = crate::pg::precheck::resolve_tables(&src, &spec.objects).await?;
        let checks = crate::pg::routes::route_checks(&src, spec, &tables).await?;
        let failed = engine::failed_checks(&checks);
        if !failed.is_empty() {
            return Err(Error::Engine(engine::EngineError::Precheck {
                task: spec.name.clone(),
                failed,
            }));
        }
    }
    Ok(())
}

async fn cmd_plan(
    ctx: &Context,
    out: Option<&Path>,
    detailed: bool,
    json: bool,
) -> Result<Outcome, Error> {
    let (desired, _recorded, plan, _store) = make_plan(ctx).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serializes")
        );
    } else {
        print!("{}", output::plan_text(&plan));
    }
    if let Some(path) = out {
        let file = PlanFile {
            format: 1,
            config_digest: config_digest(&desired),
            plan: plan.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("plan serializes");
        crate::state::write_private(path, &bytes).map_err(|source| Error::Io {
            doing: "write plan file",
            path: path.to_owned(),
            source,
        })?;
        if !json {
            println!(
                "\nSaved the plan to {}. Run `pgsync apply {}` to carry it out.",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if detailed && !plan.is_empty() {
        Outcome::ChangesPresent
    } else {
        Outcome::Success
    })
}

fn confirm(command: &'static str, question: &str) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsApproval { command });
    }
    eprint!("{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            doing: "read answer from",
            path: "stdin".into(),
            source,
        })?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Declined { command })
    }
}

/// The root cancellation token: SIGINT/SIGTERM cancel it (graceful: the
/// transaction in flight finishes); a second Ctrl-C exits at once.
fn signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        for _ in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if t.is_cancelled() {
                eprintln!("pgsync: second signal, exiting at once");
                std::process::exit(130);
            }
            eprintln!(
                "pgsync: stopping after the transaction in flight (signal again to exit at once)"
            );
            t.cancel();
        }
    });
    token
}

async fn cmd_apply(
    ctx: &Context,
    planfile: Option<&Path>,
    auto_approve: bool,
    options: ApplyOptions,
) -> Result<Outcome, Error> {
    let (desired, recorded, plan, store) = make_plan(ctx).await?;
    if let Some(path) = planfile {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            doing: "read plan file",
            path: path.to_owned(),
            source,
        })?;
        let saved: PlanFile = serde_json::from_slice(&bytes).map_err(|e| Error::StalePlan {
            path: path.to_owned(),
            why: format!("it is not a pgsync plan file ({e})"),
        })?;
        let stale = |why: String| Error::StalePlan {
            path: path.to_owned(),
            why,
        };
        if saved.plan.based_on != recorded.serial {
            return Err(stale(format!(
                "it was made at state serial {}, the state is now at serial {}",
                saved.plan.based_on, recorded.serial
            )));
        }
        if saved.config_digest != config_digest(&desired) {
            return Err(stale("the configuration changed since it was made".into()));
        }
        if saved.plan != plan {
            return Err(stale("the databases changed since it was made".into()));
        }
    } else if !plan.is_empty() {
        print!("{}", output::plan_text(&plan));
        if !auto_approve {
            confirm("apply", "\nDo you want to perform these actions?")?;
        }
    } else {
        println!("No changes. Configuration, recorded state and databases agree.");
    }
    let recorder = Recorder::new(store)?;
    let options = ApplyOptions {
        status_file: Some(ctx.status_file()),
        ..options
    };
    let cancel = signals();
    let printer = output::Printer::new();
    let result = engine::apply(
        &desired,
        &plan,
        &recorder,
        &options,
        printer.reporter(),
        &cancel,
    )
    .await;
    printer.clear();
    result?;
    let s = plan.summary();
    println!(
        "\nApply complete! Tasks: {} added, {} changed, {} destroyed.",
        s.add, s.change, s.destroy
    );
    Ok(Outcome::Success)
}

async fn cmd_destroy(
    ctx: &Context,
    auto_approve: bool,
    drop_destination: bool,
) -> Result<Outcome, Error> {
    let desired = ctx.desired().unwrap_or_default();
    let store = ctx.store().map_err(|e| locked_hint(e, ctx))?;
    let recorder = Recorder::new(store)?;
    let state = recorder.state();
    if state.tasks.is_empty() {
        println!("No changes. Nothing is recorded, so there is nothing to destroy.");
        return Ok(Outcome::Success);
    }
    let plan = Plan {
        based_on: state.serial,
        actions: state
            .tasks
            .values()
            .map(|r| plan::Action::Destroy {
                task: r.name.clone(),
                before: TaskShape::from_record(r),
            })
            .collect(),
    };
    print!("{}", output::plan_text(&plan));
    if drop_destination {
        println!("--drop-destination: the destination tables each task created are dropped too.");
    }
    if !auto_approve {
        confirm("destroy", "\nDo you really want to destroy all tasks?")?;
    }
    let report: engine::Reporter = Arc::new(output::print_event);
    for record in state.tasks.values() {
        engine::destroy_task(&desired, record, &recorder, drop_destination, &report).await?;
    }
    let _ = std::fs::remove_file(ctx.status_file());
    println!("\nDestroy complete! {} tasks destroyed.", state.tasks.len());
    Ok(Outcome::Success)
}

async fn cmd_status(ctx: &Context, json: bool) -> Result<Outcome, Error> {
    let store = match ctx.store() {
        Ok(s) => s,
        Err(Error::State(StateError::Locked { pid, .. })) => {
            let status = engine::read_status_file(&ctx.status_file()).unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serializes")
                );
            } else {
                println!("apply is running (pid {}).", pid.unwrap_or(status.pid));
                print!("{}", output::status_text(&status));
            }
            return Ok(Outcome::Success);
        }
        Err(e) => return Err(e),
    };
    let recorded = store.load()?;
    drop(store);
    let desired = ctx.desired().ok();
    let status = output::status_from_state(&recorded, desired.as_ref()).await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        );
    } else if recorded.tasks.is_empty() {
        println!("No tasks recorded. Run `pgsync apply` first.");
    } else {
        println!("no apply is running.");
        print!("{}", output::status_text(&status));
    }
    if !json && let Some(error) = engine::read_status_file(&ctx.status_file()).and_then(|s| s.error)
    {
        println!("the last apply ended with: {error}");
    }
    Ok(Outcome::Success)
}

async fn cmd_precheck(ctx: &Context) -> Result<Outcome, Error> {
    let desired = ctx.desired()?;
    // What was applied before: its slot and tables are the task's own.
    let recorded = match ctx.store() {
        Ok(store) => store.load()?,
        Err(e) => return Err(locked_hint(e, ctx)),
    };
    let mut failed = Vec::new();
    for spec in desired.tasks.values() {
        let (checks, _) = engine::prechecks(&desired, spec, recorded.tasks.get(&spec.name)).await?;
        for c in &checks {
            output::print_event(engine::Event::Check {
                task: spec.name.clone(),
                check: c.clone(),
            });
        }
        let bad = engine::failed_checks(&checks);
        if !bad.is_empty() {
            failed.push((spec.name.clone(), bad));
        }
    }
    match failed.into_iter().next() {
        None => {
            println!("All prechecks passed.");
            Ok(Outcome::Success)
        }
        Some((task, failed)) => Err(Error::Engine(engine::EngineError::Precheck {
            task,
            failed,
        })),
    }
}

/// Reads only the configuration and the servers (never the state store,
/// which a running apply holds).
async fn cmd_verify(
    ctx: &Context,
    json: bool,
    rows: bool,
    jobs: usize,
    timeout: u64,
) -> Result<Outcome, Error> {
    let desired = ctx.desired()?;
    let options = crate::verify::VerifyOptions {
        jobs,
        rows,
        timeout: std::time::Duration::from_secs(timeout),
        hash: None,
    };
    let say = |m: String| eprintln!("{m}");
    let report = crate::verify::verify(&desired, &options, &say)
        .await
        .map_err(|e| match e {
            crate::verify::VerifyError::Pg(p) => Error::Pg(p),
            other => Error::Verify(other),
        })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", crate::verify::render_text(&report));
    }
    Ok(match report.result {
        crate::verify::Verdict::Ok => Outcome::Success,
        crate::verify::Verdict::Mismatch => Outcome::Mismatch,
    })
}

fn cmd_state(ctx: &Context, command: StateCommand) -> Result<Outcome, Error> {
    let store = ctx.store()?;
    let state = store.load()?;
    match command {
        StateCommand::List => {
            for name in state.tasks.keys() {
                println!("task.{name}");
            }
        }
        StateCommand::Show { address } => {
            let name = address.strip_prefix("task.").unwrap_or(&address);
            match state.tasks.get(name) {
                Some(r) => println!(
                    "{}",
                    serde_json::to_string_pretty(r).expect("record serializes")
                ),
                None => {
                    return Err(Error::Io {
                        doing: "find recorded",
                        path: PathBuf::from(address),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such address in state (see `pgsync state list`)",
                        ),
                    });
                }
            }
        }
    }
    Ok(Outcome::Success)
}
