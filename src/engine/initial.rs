//! The initial sync of one task: prechecks, helper objects, slot with
//! exported snapshot, schema (pre-data), parallel COPY, schema (post-data),
//! and the progress row that hands over to the stream.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::{
    ApplyOptions, EngineError, Event, LiveStatus, Recorder, Reporter, endpoints,
    failed_checks as failed,
};
use crate::model::{
    DesiredState, Lsn, QualifiedName, TaskSpec, counted, publication_name_for_task,
    slot_name_for_task,
};
use crate::pg::precheck::{self, Check, CheckStatus, SourceTable};
use crate::pg::schema::{SchemaSelection, generate};
use crate::pg::slot::ReplicationSession;
use crate::pg::{Connected, admin, connect, ddl_capture};
use crate::snapshot::{ChunkSizing, CopyJob, Resume};
use crate::state::{TableStatus, TaskPhase, TaskRecord};

/// Runs the prechecks of `spec` and returns them with the resolved tables.
/// `recorded` is the task's record when it was applied before: its slot
/// needs no new slot, and the destination tables it created or copied into
/// are not conflicts.
///
/// # Errors
/// Connection or catalog failures (a failed check is not an error here).
pub async fn prechecks(
    desired: &DesiredState,
    spec: &TaskSpec,
    recorded: Option<&crate::state::TaskRecord>,
) -> Result<(Vec<Check>, Vec<SourceTable>), EngineError> {
    let mut owned_tables: Vec<String> = recorded
        .map(|r| r.created_tables.clone())
        .unwrap_or_default();
    owned_tables.extend(recorded.into_iter().flat_map(|r| r.tables.keys().cloned()));
    let has_slot = recorded.is_some_and(|r| r.slot.is_some());
    let (source, destination) = endpoints(desired, spec)?;
    let src = connect(source).await?;
    let dst = connect(destination).await?;
    let (tables, missing) = precheck::resolve_tables(&src, &spec.objects).await?;
    let incremental = spec.sync_types.incremental;
    let mut checks = precheck::source_checks(
        &src,
        &tables,
        &missing,
        precheck::SourceCheckInput {
            task: &spec.name,
            objects: &spec.objects,
            publication: spec.publication.as_deref(),
            slots_needed: i64::from(incremental && !has_slot),
            incremental,
            schema: spec.sync_types.schema,
        },
    )
    .await?;
    checks.extend(crate::pg::routes::route_checks(&src, spec, &tables).await?);
    // Tables pgsync itself created for this task (a resumed sync) are not
    // conflicts. The destination is searched under the names the tables
    // get there.
    let foreign: Vec<SourceTable> = tables
        .iter()
        .filter(|t| !owned_tables.contains(&t.name.to_string()))
        .map(|t| SourceTable {
            name: spec
                .route(&t.name.schema, &t.name.name)
                .map_or_else(|| t.name.clone(), |r| r.target),
            ..t.clone()
        })
        .collect();
    let mut dst_checks = precheck::destination_checks(
        &src,
        &dst,
        &foreign,
        spec.conflicting_tables == crate::model::ConflictMode::Error,
    )
    .await?;
    if !spec.sync_types.schema {
        // Without schema sync the tables must already be there.
        for c in &mut dst_checks {
            if c.name == "destination.conflicting_tables" {
                let missing: Vec<String> = foreign
                    .iter()
                    .map(|t| t.name.to_string())
                    .filter(|n| !c.detail.contains(n.as_str()))
                    .collect();
                *c = if missing.is_empty() || c.status != CheckStatus::Pass {
                    Check {
                        name: "destination.tables_exist",
                        status: CheckStatus::Pass,
                        detail: "the selected tables exist on the destination".into(),
                        fix: None,
                    }
                } else {
                    Check {
                        name: "destination.tables_exist",
                        status: CheckStatus::Fail,
                        detail: format!(
                            "without \"schema\" in sync_types the destination must already have: {}",
                            missing.join(", ")
                        ),
                        fix: Some(
                            "add \"schema\" to sync_types, or create the tables on the destination"
                                .into(),
                        ),
                    }
                };
            }
        }
    }
    checks.extend(dst_checks);
    Ok((checks, tables))
}

pub(super) async fn run(
    desired: &DesiredState,
    spec: &TaskSpec,
    recorder: &Recorder,
    options: &ApplyOptions,
    report: &Reporter,
    cancel: &CancellationToken,
    live: &LiveStatus,
) -> Result<(), EngineError> {
    let task = spec.name.as_str();
    let step = |m: String| {
        report(Event::Step {
            task: task.to_owned(),
            message: m,
        })
    };
    let (source, destination) = endpoints(desired, spec)?;
    live.task(task, |s| s.phase = "precheck".into());

    let previous = recorder.task(task);
    let (checks, tables) = prechecks(desired, spec, previous.as_ref()).await?;
    for c in &checks {
        report(Event::Check {
            task: task.to_owned(),
            check: c.clone(),
        });
    }
    let bad = failed(&checks);
    if !bad.is_empty() {
        live.task(task, |s| s.phase = "failed".into());
        return Err(EngineError::Precheck {
            task: task.to_owned(),
            failed: bad,
        });
    }

    let mut record = previous.unwrap_or_else(|| TaskRecord::new(spec, source, destination));
    record.objects = spec.objects.clone();
    record.mappings = spec.mappings.clone();
    record.name_case = spec.name_case;
    record.sync_types = spec.sync_types;
    record.conflicting_tables = spec.conflicting_tables;
    if let Some(p) = &spec.publication {
        // Not pgsync's: recorded at once, so the plan compares it and
        // destroy knows to leave it.
        record.publication = Some(p.clone());
        record.publication_external = true;
    }
    record.phase = TaskPhase::Precheck;
    recorder.put(record.clone())?;

    let src = connect(source).await?;
    let dst = connect(destination).await?;

    // A resumed initial sync. With a stream, the slot (and the snapshot
    // point of the tables copied under it) survives: tables already copied
    // keep their rows, the others are copied under a new snapshot taken by
    // a temporary slot, and the stream skips their changes committed before
    // that one (as for a table added to a streaming task). Without a
    // stream, or when the slot is gone, everything starts again.
    let mut resume_from = None;
    if let (Some(slot), Some(lsn)) = (&record.slot, record.consistent_lsn)
        && spec.sync_types.incremental
        && (!spec.sync_types.schema || record.schema_pre_done)
        && admin::slot_facts(&src, slot)
            .await?
            .is_some_and(|f| !f.lost)
    {
        resume_from = Some((slot.clone(), lsn));
    } else if let Some(slot) = &record.slot {
        step(format!(
            "dropping slot {slot} of the interrupted initial sync"
        ));
        admin::drop_slot(&src, slot).await?;
    }
    // A whole table's COPY commits at once, and so does each chunk of a
    // large table: the tables recorded as copied hold rows of the old
    // snapshot, and so may the tables with chunks begun or done.
    let copied: Vec<String> = record
        .tables
        .iter()
        .filter(|(_, st)| matches!(st, TableStatus::Copied { .. }))
        .map(|(t, _)| t.clone())
        .collect();
    let partly: Vec<String> = record
        .chunks
        .iter()
        .filter(|(t, c)| !copied.contains(t) && (!c.started.is_empty() || !c.done.is_empty()))
        .map(|(t, _)| t.clone())
        .collect();
    let staged = spec.sync_types.schema;
    let copied_names = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter_map(|t| t.split_once('.'))
            .map(|(s, n)| {
                super::reshape::copied_name(spec, &QualifiedName::new(s, n), staged).to_string()
            })
            .collect()
    };
    if resume_from.is_none() {
        let dirty: Vec<String> = copied.iter().chain(&partly).cloned().collect();
        if !dirty.is_empty() {
            step(format!(
                "emptying {} copied under the lost snapshot",
                counted(dirty.len(), "destination table")
            ));
            truncate(&dst, &copied_names(&dirty)).await?;
        }
    }
    let leaf: Vec<QualifiedName> = tables
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| t.name.clone())
        .collect();
    let all: Vec<QualifiedName> = tables.iter().map(|t| t.name.clone()).collect();
    let leaf: Vec<QualifiedName> = if resume_from.is_some() {
        leaf.into_iter()
            .filter(|t| !copied.contains(&t.to_string()))
            .collect()
    } else {
        leaf
    };
    let pending: BTreeMap<String, TableStatus> = leaf
        .iter()
        .map(|t| (t.to_string(), TableStatus::Pending))
        .collect();
    // Partly copied tables whose finished chunks stay (key ranges the
    // stream can tell apart, each chunk with its snapshot point; see
    // docs/architecture.md, "resume granularity").
    let mut resume: BTreeMap<QualifiedName, Resume> = BTreeMap::new();
    if resume_from.is_some() {
        for t in &leaf {
            let Some(c) = record.chunks.get(&t.to_string()) else {
                continue;
            };
            if c.split.resumable()
                && !c.done.is_empty()
                && c.done.values().all(|d| d.snapshot_lsn.is_some())
            {
                resume.insert(
                    t.clone(),
                    Resume {
                        split: c.split.clone(),
                        done: c.done.keys().copied().collect(),
                        redo: c
                            .started
                            .iter()
                            .filter(|i| !c.done.contains_key(i))
                            .copied()
                            .collect(),
                    },
                );
            }
        }
    }

    let mut session = None;
    let snapshot_name;
    let snapshot_lsn;
    let mut _exporter = None;
    if let Some((slot, lsn)) = &resume_from {
        // Tables interrupted mid-copy: their chunks (or their one COPY)
        // may have committed; emptied, unless their chunks are kept.
        let names: Vec<String> = leaf
            .iter()
            .filter(|t| !resume.contains_key(*t))
            .map(ToString::to_string)
            .collect();
        if !names.is_empty() {
            truncate(&dst, &copied_names(&names)).await?;
        }
        let temp = crate::model::temporary_slot_name_for_task(task);
        step(format!(
            "resuming the initial sync: {} copied under slot {slot} (consistent at {lsn}) are kept; {} are copied under a new snapshot from temporary slot {temp}",
            counted(copied.len(), "table"),
            counted(leaf.len(), "table")
        ));
        for (t, r) in &resume {
            let n = r.split.chunks();
            step(format!(
                "{t}: {} of {n} chunks copied before are kept; the other {} are copied under the new snapshot{}",
                r.done.len(),
                n as usize - r.done.len(),
                if r.redo.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} begun before: their key ranges are emptied first)",
                        counted(r.redo.len(), "chunk")
                    )
                }
            ));
        }
        let mut s = ReplicationSession::open(source).await?;
        let created = s.create_slot_with(&temp, true).await?;
        let consistent = created.consistent_lsn;
        recorder.update(task, |r| {
            // A kept table's changes are skipped by key range (each chunk's
            // point), not for the whole table.
            r.table_snapshots.retain(|(n, _)| !leaf.contains(n));
            r.table_snapshots.extend(
                leaf.iter()
                    .filter(|n| !resume.contains_key(*n))
                    .map(|n| (n.clone(), consistent)),
            );
            r.chunks.retain(|n, _| {
                !leaf.iter().any(|l| &l.to_string() == n)
                    || resume.keys().any(|k| &k.to_string() == n)
            });
            for t in &leaf {
                r.tables.insert(t.to_string(), TableStatus::Pending);
            }
        })?;
        snapshot_name = created.snapshot_name;
        snapshot_lsn = Some(consistent);
        session = Some(s);
    } else if spec.sync_types.incremental {
        let external = spec.publication.is_some();
        let publication = spec
            .publication
            .clone()
            .unwrap_or_else(|| publication_name_for_task(task));
        // Helper tables created by an earlier, interrupted run are used again.
        let helper_tables =
            !external && (record.heartbeat || precheck::can_create_helper_tables(&src).await?);
        recorder.update(task, |r| {
            r.publication = Some(publication.clone());
            r.publication_external = external;
            r.heartbeat = helper_tables;
        })?;
        if helper_tables {
            step("creating heartbeat tables public.dts_postgres_heartbeat and public.dts_sequence_state".into());
            admin::ensure_heartbeat(&src, task).await?;
        } else {
            step("heartbeat and sequence positions travel as logical messages (pg_logical_emit_message); no helper table on the source".into());
        }
        let superuser = ddl_capture::can_capture(&src).await?;
        let capture = superuser && !external;
        if capture {
            recorder.update(task, |r| r.ddl_capture = true)?;
            step(
                "installing DDL capture (event triggers dts_ddl_capture, dts_drop_capture)".into(),
            );
            ddl_capture::install(&src, &publication, &spec.objects).await?;
        } else {
            let (detail, fix) = if external {
                (
                    format!("DDL capture publishes its own table and adds new tables to the publication, and publication {publication:?} is not pgsync's to alter; DDL will not be replicated"),
                    "leave `publication` out (with a superuser source role) to replicate DDL; otherwise apply schema changes to the destination yourself before the source".to_owned(),
                )
            } else {
                (
                    "the source role is not a superuser, so no event trigger can capture DDL; DDL will not be replicated".to_owned(),
                    "connect to the source as a superuser to replicate DDL".to_owned(),
                )
            };
            report(Event::Check {
                task: task.to_owned(),
                check: Check {
                    name: "source.ddl_capture",
                    status: CheckStatus::Warn,
                    detail,
                    fix: Some(fix),
                },
            });
        }
        if external {
            step(format!(
                "streaming from publication {publication:?} (created outside pgsync: never altered or dropped by it)"
            ));
        } else {
            step(format!("creating publication {publication}"));
            admin::create_publication(&src, &publication, &all, helper_tables, capture).await?;
        }

        let slot = slot_name_for_task(task);
        recorder.update(task, |r| r.slot = Some(slot.clone()))?;
        step(format!(
            "creating replication slot {slot} with an exported snapshot"
        ));
        let mut s = ReplicationSession::open(source).await?;
        let created = s.create_slot(&slot).await?;
        step(format!(
            "slot {slot} consistent at {}",
            created.consistent_lsn
        ));
        recorder.update(task, |r| {
            r.consistent_lsn = Some(created.consistent_lsn);
            r.phase = TaskPhase::Snapshot;
            r.tables = pending.clone();
            r.chunks.clear();
        })?;
        crate::failpoint::hit("initial.after_slot");
        snapshot_name = created.snapshot_name;
        snapshot_lsn = Some(created.consistent_lsn);
        session = Some(s);
    } else {
        // No stream: a plain exported snapshot keeps the parallel copy consistent.
        let exporter = connect(source).await?;
        exporter
            .client
            .batch_execute("begin isolation level repeatable read read only")
            .await
            .map_err(exporter.err("begin snapshot transaction"))?;
        snapshot_name = exporter
            .client
            .query_one("select pg_export_snapshot()", &[])
            .await
            .map_err(exporter.err("export snapshot"))?
            .get(0);
        _exporter = Some(exporter);
        snapshot_lsn = None;
        recorder.update(task, |r| {
            r.phase = TaskPhase::Snapshot;
            r.tables = pending.clone();
            r.chunks.clear();
        })?;
    }
    live.task(task, |s| {
        s.phase = "snapshot".into();
        for t in &leaf {
            s.tables.insert(
                t.to_string(),
                super::status::TableProgress {
                    state: "pending".into(),
                    ..Default::default()
                },
            );
        }
    });

    let mut script = None;
    if spec.sync_types.schema && !(record.schema_pre_done && record.schema_post_done) {
        let selection = SchemaSelection::from_objects(&spec.objects, &all);
        // Read the catalogs as of the slot's snapshot, so DDL committed after
        // it is replayed from the stream and not also created here.
        src.client
            .batch_execute(&format!(
                "begin isolation level repeatable read read only; set transaction snapshot {}",
                crate::sql::literal(&snapshot_name)
            ))
            .await
            .map_err(src.err("import the snapshot for schema generation"))?;
        let generated = generate(&src.client, &selection)
            .await
            .map_err(|e| crate::pg::PgError::new("read source catalogs", &src.endpoint, e))?;
        src.client
            .batch_execute("commit")
            .await
            .map_err(src.err("end schema snapshot"))?;
        for w in &generated.warnings {
            step(format!("schema warning: {w}"));
        }
        // The objects are recorded just before the schema transaction
        // commits: if they all exist, it committed and only the record of
        // that was lost.
        let mut pre_done = record.schema_pre_done;
        if !pre_done && !record.created_objects.is_empty() {
            let existing = admin::schema_objects(&dst).await?;
            pre_done = record
                .created_objects
                .iter()
                .all(|o| existing.contains(&(o.kind.clone(), o.identity.clone())));
            if pre_done {
                recorder.update(task, |r| r.schema_pre_done = true)?;
            }
        }
        if !pre_done {
            // Only tables that are not there yet are pgsync's to drop later
            // (`conflicting_tables = "ignore"` writes into existing ones).
            let mut created: Vec<String> = Vec::new();
            for t in &all {
                if !destination_has(&dst, t).await? {
                    created.push(t.to_string());
                }
            }
            recorder.update(task, |r| r.created_tables = created.clone())?;
            step(format!(
                "creating schema on the destination ({} before the copy)",
                counted(generated.pre_data.len(), "statement")
            ));
            let mut pre_data = generated.pre_data.clone();
            pre_data.extend(super::reshape::before_copy(spec, &generated.tables));
            let keep = spec.conflicting_tables == crate::model::ConflictMode::Ignore;
            run_pre_data(&dst, &pre_data, recorder, task, keep).await?;
            crate::failpoint::hit("initial.after_pre_data");
            recorder.update(task, |r| r.schema_pre_done = true)?;
        }
        script = Some(generated);
    }

    // Destination tables that exist under a renamed table's destination
    // name before anything is copied (not made by this task): written
    // into directly.
    let mut existing_targets = Vec::new();
    for t in &all {
        if let Some(route) = spec.route(&t.schema, &t.name)
            && route.target != route.source
            && destination_has(&dst, &route.target).await?
        {
            existing_targets.push(route.target);
        }
    }
    if spec.sync_types.full {
        let jobs = super::copy::jobs(options.jobs, &src, &dst, step).await?;
        step(format!(
            "copying {}, {} at a time",
            counted(leaf.len(), "table"),
            jobs
        ));
        let [qps, rps, bytes_per_second] = CopyJob::limiters(&spec.throttle);
        let job = CopyJob {
            source: source.clone(),
            destination: destination.clone(),
            snapshot: snapshot_name.clone(),
            tables: super::reshape::copy_tables(
                spec,
                &leaf,
                spec.sync_types.schema,
                &existing_targets,
            ),
            binary: spec.sync_types.schema,
            jobs,
            qps,
            rps,
            bytes_per_second,
            keep_existing: spec.conflicting_tables == crate::model::ConflictMode::Ignore,
            sizing: ChunkSizing::from_env(),
            resume,
        };
        let copy_cancel = cancel.child_token();
        let run = super::copy::CopyRun {
            task,
            recorder,
            live: Some(live),
            report,
            initial: true,
            snapshot_lsn,
        };
        super::copy::run(&run, job, &copy_cancel).await?;
        if cancel.is_cancelled() {
            step(if spec.sync_types.incremental {
                "interrupted during the copy; the next apply keeps the tables and chunks copied and copies the rest".into()
            } else {
                "interrupted during the copy; the next apply copies again from a fresh snapshot"
                    .into()
            });
            return Ok(());
        }
    }

    if let Some(script) = &script {
        step(format!(
            "creating keys, indexes, constraints and triggers ({})",
            counted(script.post_data.len(), "statement")
        ));
        crate::failpoint::hit("initial.before_post_data");
        let created = recorder
            .task(task)
            .map(|r| r.created_objects)
            .unwrap_or_default();
        let reshape = super::reshape::after_post_data_of(
            spec,
            &src,
            &all,
            &created,
            &existing_targets,
            recorder,
            task,
        )
        .await?;
        let mut post_data = script.post_data.clone();
        for fk in super::reshape::relax_foreign_keys(spec, &all, &mut post_data) {
            step(format!(
                "foreign key {fk} is created NOT VALID: a `where` filter may leave out rows it refers to"
            ));
        }
        begin_schema(&dst).await?;
        apply_statements(
            &dst,
            &post_data,
            spec.conflicting_tables == crate::model::ConflictMode::Ignore,
        )
        .await?;
        if !reshape.is_empty() {
            step(format!(
                "renaming and reshaping on the destination ({})",
                counted(reshape.len(), "statement")
            ));
            // Created objects are recorded under their new names too
            // (before the commit, as for pre-data): destroy drops
            // whichever exist.
            let addresses: Vec<(u32, u32)> = admin::schema_object_addresses(&dst)
                .await?
                .into_iter()
                .filter(|(_, _, k, i)| created.iter().any(|o| &o.kind == k && &o.identity == i))
                .map(|(c, o, _, _)| (c, o))
                .collect();
            apply_statements(&dst, &reshape, false).await?;
            let renamed = admin::identify_objects(&dst, &addresses).await?;
            recorder.update(task, |r| {
                for (kind, identity) in &renamed {
                    let o = crate::state::CreatedObject {
                        kind: kind.clone(),
                        identity: identity.clone(),
                    };
                    if !r.created_objects.contains(&o) {
                        r.created_objects.push(o);
                    }
                }
                // Created under their source names (before this update).
                let created_tables = r.created_tables.clone();
                for t in &all {
                    if let Some(route) = spec.route(&t.schema, &t.name)
                        && !existing_targets.contains(&route.target)
                        && created_tables.contains(&t.to_string())
                    {
                        let name = route.target.to_string();
                        if !r.created_tables.contains(&name) {
                            r.created_tables.push(name);
                        }
                    }
                }
            })?;
        }
        dst.client
            .batch_execute("commit")
            .await
            .map_err(dst.err("commit schema"))?;
        recorder.update(task, |r| r.schema_post_done = true)?;
    }
    // The copy is done: the exported snapshot may go.
    drop(session);

    if spec.sync_types.incremental {
        let lsn = recorder
            .task(task)
            .and_then(|r| r.consistent_lsn)
            .unwrap_or(Lsn::ZERO);
        recorder.update(task, |r| r.progress = true)?;
        crate::sink::ensure_progress_table(&dst).await?;
        crate::sink::set_progress(&dst, task, lsn).await?;
        crate::failpoint::hit("initial.before_streaming_recorded");
        recorder.update(task, |r| r.phase = TaskPhase::Streaming)?;
        live.task(task, |s| s.phase = "streaming".into());
        step(format!("initial sync done; streaming from {lsn}"));
    } else {
        recorder.update(task, |r| r.phase = TaskPhase::Done)?;
        live.task(task, |s| s.phase = "done".into());
        step("initial sync done".into());
    }
    Ok(())
}

/// Runs the pre-data statements in one destination transaction and, before
/// it commits, records every object they created (so a replacement or
/// `destroy --drop-destination` can remove exactly those).
async fn run_pre_data(
    dst: &Connected,
    statements: &[crate::pg::schema::Statement],
    recorder: &Recorder,
    task: &str,
    keep_existing: bool,
) -> Result<(), EngineError> {
    let before = crate::pg::admin::schema_objects(dst).await?;
    begin_schema(dst).await?;
    apply_statements(dst, statements, keep_existing).await?;
    let after = crate::pg::admin::schema_objects(dst).await?;
    let created: Vec<crate::state::CreatedObject> = after
        .into_iter()
        .filter(|o| !before.contains(o))
        .map(|(kind, identity)| crate::state::CreatedObject { kind, identity })
        .collect();
    recorder.update(task, |r| r.created_objects = created.clone())?;
    dst.client
        .batch_execute("commit")
        .await
        .map_err(dst.err("commit schema"))?;
    Ok(())
}

/// Whether the destination has table `t`.
pub(super) async fn destination_has(
    dst: &Connected,
    t: &QualifiedName,
) -> Result<bool, EngineError> {
    Ok(admin::table_exists(dst, t).await?)
}

pub(super) async fn begin_schema(dst: &Connected) -> Result<(), EngineError> {
    dst.client
        .batch_execute(
            "set check_function_bodies = off; set session_replication_role = replica; begin",
        )
        .await
        .map_err(dst.err("prepare schema session"))?;
    Ok(())
}

/// Runs `statements` on the open schema transaction. With
/// `keep_existing` (`conflicting_tables = "ignore"`, a table added to a
/// streaming task) each runs under a savepoint, and one refused because its
/// object exists already (SQLSTATE 42P07, 42710, 42723, 42P06 "duplicate
/// …", or 42P16 for a second primary key) is skipped: what exists is kept.
pub(super) async fn apply_statements(
    dst: &Connected,
    statements: &[crate::pg::schema::Statement],
    keep_existing: bool,
) -> Result<(), EngineError> {
    for s in statements {
        if keep_existing {
            dst.client
                .batch_execute("savepoint dts_object")
                .await
                .map_err(dst.err("savepoint"))?;
        }
        match dst.client.batch_execute(&s.sql).await {
            Ok(()) => {}
            Err(e)
                if keep_existing
                    && e.code().is_some_and(|c| {
                        matches!(c.code(), "42P07" | "42710" | "42723" | "42P06" | "42P16")
                    }) =>
            {
                tracing::info!(object = %s.name, kind = s.kind, "exists on the destination; kept");
                dst.client
                    .batch_execute("rollback to savepoint dts_object")
                    .await
                    .map_err(dst.err("rollback to savepoint"))?;
            }
            Err(e) => {
                return Err(EngineError::Schema {
                    kind: s.kind.to_owned(),
                    name: s.name.clone(),
                    source: crate::pg::PgError::new(format!("run `{}`", s.sql), &dst.endpoint, e),
                });
            }
        }
    }
    Ok(())
}

async fn truncate(dst: &Connected, tables: &[String]) -> Result<(), EngineError> {
    let list: Vec<String> = tables
        .iter()
        .filter_map(|t| t.split_once('.'))
        .map(|(s, n)| crate::sql::qualified(s, n))
        .collect();
    dst.client
        .batch_execute(&format!(
            "set session_replication_role = replica; truncate {} cascade",
            list.join(", ")
        ))
        .await
        .map_err(dst.err("empty the tables of the interrupted copy"))?;
    Ok(())
}
