//! A changed selection of a task that is already streaming, carried out
//! table by table (the plan's `Reselect`): the other tables are neither
//! copied again nor interrupted beyond the apply's own restart.
//!
//! The tables concerned are found by resolving the recorded and the
//! desired selection against the source and comparing each table's route:
//! - **added** (selected now, not before): created (pre-data objects that
//!   exist already are kept), copied under a snapshot of their own, then
//!   keys, indexes and reshaping, as an initial sync does;
//! - **re-copied** (destination name, columns or filter changed): the old
//!   destination table is dropped, then as added;
//! - **removed**: dropped from the publication; the destination table stays
//!   unless `--drop-removed-tables`.
//!
//! Consistency with the stream: the tables join the publication first, then
//! a temporary replication slot exports the snapshot they are copied under;
//! its consistent point `L` is recorded per table, and the stream skips
//! their changes in transactions that committed before `L` (the copy holds
//! them) — the table-sync hand-over of native logical replication.

use std::collections::BTreeMap;

use super::{ApplyOptions, EngineError, Event, Recorder, Reporter, endpoints};
use crate::model::{DesiredState, Lsn, QualifiedName, Route, TaskSpec, counted};
use crate::pg::schema::{SchemaSelection, Statement, generate};
use crate::pg::slot::ReplicationSession;
use crate::pg::{Connected, admin, connect, ddl_capture, precheck};
use crate::snapshot::CopyJob;
use crate::sql::{ident, qualified};
use crate::state::{TableStatus, TaskRecord};

/// The desired spec with the recorded selection: what the task streams now.
fn recorded_spec(spec: &TaskSpec, record: &TaskRecord) -> TaskSpec {
    TaskSpec {
        objects: record.objects.clone(),
        mappings: record.mappings.clone(),
        name_case: record.name_case,
        ..spec.clone()
    }
}

pub(super) async fn run(
    desired: &DesiredState,
    spec: &TaskSpec,
    recorder: &Recorder,
    options: &ApplyOptions,
    report: &Reporter,
) -> Result<(), EngineError> {
    let task = spec.name.as_str();
    let step = |m: String| {
        report(Event::Step {
            task: task.to_owned(),
            message: m,
        })
    };
    let record = recorder.task(task).expect("a reselected task has a record");
    let (source, destination) = endpoints(desired, spec)?;
    let src = connect(source).await?;
    let dst = connect(destination).await?;
    let old_spec = recorded_spec(spec, &record);
    let (old_tables, _) = precheck::resolve_tables(&src, &old_spec.objects).await?;
    let (new_tables, missing) = precheck::resolve_tables(&src, &spec.objects).await?;
    if let Some(m) = missing.first() {
        return Err(EngineError::Precheck {
            task: task.to_owned(),
            failed: vec![precheck::Check::fail(
                "source.tables",
                format!("table {m} does not exist on the source"),
                "fix the table block or create the table",
            )],
        });
    }
    let checks = crate::pg::routes::route_checks(&src, spec, &new_tables).await?;
    let failed = super::failed_checks(&checks);
    if !failed.is_empty() {
        return Err(EngineError::Precheck {
            task: task.to_owned(),
            failed,
        });
    }

    let old_routes: BTreeMap<QualifiedName, Route> = old_tables
        .iter()
        .filter_map(|t| {
            old_spec
                .route(&t.name.schema, &t.name.name)
                .map(|r| (t.name.clone(), r))
        })
        .collect();
    let mut added = Vec::new();
    let mut recopied = Vec::new();
    for t in &new_tables {
        let Some(route) = spec.route(&t.name.schema, &t.name.name) else {
            continue;
        };
        // A table left pending by an interrupted change is copied again.
        let pending = matches!(
            record.tables.get(&t.name.to_string()),
            Some(TableStatus::Pending | TableStatus::Copying)
        );
        match old_routes.get(&t.name) {
            None => added.push((t.clone(), route)),
            Some(old) if !old.same_shape(&route) || pending => {
                recopied.push((t.clone(), old.clone(), route))
            }
            Some(_) => {}
        }
    }
    let removed: Vec<(QualifiedName, Route)> = old_routes
        .iter()
        .filter(|(name, _)| !new_tables.iter().any(|t| &t.name == *name))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    step(format!(
        "selection changed: {} added, {} to copy again, {} removed; the other tables keep their rows and stream position",
        counted(added.len(), "table"),
        counted(recopied.len(), "table"),
        counted(removed.len(), "table")
    ));

    // 1. Which destination tables must go, checked before anything changes:
    // the old table of a re-copied one, one already standing where an added
    // table lands (kept from an earlier removal, or made by replayed DDL),
    // and removed ones with --drop-removed-tables. pgsync may drop a table
    // it created; with `conflicting_tables = "error"` and schema sync every
    // selected destination table is its own (the precheck refused existing
    // ones), as are those its DDL replay created. With "ignore", an existing
    // table an added one lands in is kept and written into.
    let created_tables = record.created_tables.clone();
    let owned = |t: &QualifiedName| {
        created_tables.contains(&t.to_string())
            || (record.conflicting_tables == crate::model::ConflictMode::Error
                && record.sync_types.schema)
    };
    let ignore = spec.conflicting_tables == crate::model::ConflictMode::Ignore;
    let mut drops: Vec<QualifiedName> = Vec::new();
    let mut existing_targets: Vec<QualifiedName> = Vec::new();
    let mut refused = Vec::new();
    let candidates = recopied
        .iter()
        .map(|(_, old, _)| (old.target.clone(), true))
        .chain(added.iter().map(|(_, r)| (r.target.clone(), false)))
        .chain(
            removed
                .iter()
                .filter(|_| options.drop_removed_tables)
                .map(|(_, r)| (r.target.clone(), true)),
        );
    for (target, must_go) in candidates {
        if drops.contains(&target) || !super::initial::destination_has(&dst, &target).await? {
            continue;
        }
        if owned(&target) {
            drops.push(target);
        } else if ignore && !must_go {
            existing_targets.push(target);
        } else {
            refused.push(target.to_string());
        }
    }
    if !refused.is_empty() {
        return Err(EngineError::Precheck {
            task: task.to_owned(),
            failed: vec![precheck::Check::fail(
                "destination.tables",
                format!(
                    "these destination tables stand in the way and pgsync did not create them: {}",
                    refused.join(", ")
                ),
                "drop or rename them on the destination, or set conflicting_tables = \"ignore\" to write an added table into an existing one; then run apply again",
            )],
        });
    }

    // 2. Out of the publication: removed and re-copied tables (the stream
    // skips them until they are back). A publication made by the DBA is
    // theirs to change: the check at stream start names tables it lacks.
    let publication = record
        .publication
        .clone()
        .filter(|_| !record.publication_external);
    let leaving: Vec<&QualifiedName> = removed
        .iter()
        .map(|(n, _)| n)
        .chain(recopied.iter().map(|(t, _, _)| &t.name))
        .collect();
    // Recorded first: an interruption from here on leaves them pending, and
    // the next plan copies them again.
    recorder.update(task, |r| {
        let leaf = recopied
            .iter()
            .map(|(t, _, _)| t)
            .chain(added.iter().map(|(t, _)| t))
            .filter(|t| t.relkind == 'r' && spec.sync_types.full);
        for t in leaf {
            r.tables.insert(t.name.to_string(), TableStatus::Pending);
        }
    })?;
    if let Some(p) = &publication {
        for t in &leaving {
            alter_publication(&src, p, "drop", t).await?;
        }
    }
    for target in &drops {
        step(format!("dropping destination table {target}"));
        dst.client
            .batch_execute(&format!(
                "set session_replication_role = replica; drop table if exists {} cascade",
                qualified(&target.schema, &target.name)
            ))
            .await
            .map_err(dst.err(format!("drop {target}")))?;
    }
    recorder.update(task, |r| {
        for (n, _) in &removed {
            r.tables.remove(&n.to_string());
        }
        r.created_tables
            .retain(|t| !drops.iter().any(|d| &d.to_string() == t));
    })?;

    let arriving: Vec<&precheck::SourceTable> = added
        .iter()
        .map(|(t, _)| t)
        .chain(recopied.iter().map(|(t, _, _)| t))
        .collect();
    if !arriving.is_empty() {
        copy_arriving(
            spec,
            &record,
            &arriving,
            &existing_targets,
            recorder,
            options,
            report,
            &src,
            &dst,
            source,
            destination,
        )
        .await?;
    }

    // The new selection is what the stream and DDL capture follow now.
    if record.ddl_capture
        && let Some(p) = &publication
    {
        ddl_capture::install(&src, p, &spec.objects).await?;
    }
    recorder.update(task, |r| {
        r.objects = spec.objects.clone();
        r.mappings = spec.mappings.clone();
        r.name_case = spec.name_case;
        r.conflicting_tables = spec.conflicting_tables;
        r.retry = spec.retry;
        r.throttle = spec.throttle;
    })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn copy_arriving(
    spec: &TaskSpec,
    record: &TaskRecord,
    arriving: &[&precheck::SourceTable],
    existing_targets: &[QualifiedName],
    recorder: &Recorder,
    options: &ApplyOptions,
    report: &Reporter,
    src: &Connected,
    dst: &Connected,
    source: &crate::model::EndpointSpec,
    destination: &crate::model::EndpointSpec,
) -> Result<(), EngineError> {
    let task = spec.name.as_str();
    let step = |m: String| {
        report(Event::Step {
            task: task.to_owned(),
            message: m,
        })
    };
    // 2. Into the publication, then a snapshot taken after that.
    if let Some(p) = record
        .publication
        .as_ref()
        .filter(|_| !record.publication_external)
    {
        for t in arriving {
            alter_publication(src, p, "add", &t.name).await?;
        }
    }
    let mut session = None;
    let mut _exporter = None;
    let (snapshot, consistent) = if spec.sync_types.incremental {
        let slot = crate::model::temporary_slot_name_for_task(task);
        let mut s = ReplicationSession::open(source).await?;
        let created = s.create_slot_with(&slot, true).await?;
        step(format!(
            "temporary slot {slot}: snapshot of {} consistent at {}",
            counted(arriving.len(), "table"),
            created.consistent_lsn
        ));
        session = Some(s);
        (created.snapshot_name, created.consistent_lsn)
    } else {
        let exporter = connect(source).await?;
        exporter
            .client
            .batch_execute("begin isolation level repeatable read read only")
            .await
            .map_err(exporter.err("begin snapshot transaction"))?;
        let name: String = exporter
            .client
            .query_one("select pg_export_snapshot()", &[])
            .await
            .map_err(exporter.err("export snapshot"))?
            .get(0);
        _exporter = Some(exporter);
        (name, Lsn::ZERO)
    };
    let names: Vec<QualifiedName> = arriving.iter().map(|t| t.name.clone()).collect();
    let leaf: Vec<QualifiedName> = arriving
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| t.name.clone())
        .collect();

    // 3. Schema: the tables and what they need; objects that exist already
    // (types, sequences, functions of the schema) are kept.
    let mut script = None;
    if spec.sync_types.schema {
        src.client
            .batch_execute(&format!(
                "begin isolation level repeatable read read only; set transaction snapshot {}",
                crate::sql::literal(&snapshot)
            ))
            .await
            .map_err(src.err("import the snapshot for schema generation"))?;
        let selection = SchemaSelection {
            schemas: Vec::new(),
            tables: names.clone(),
            exclude: vec![QualifiedName::new(crate::sql::helpers::SCHEMA, "dts_*")],
        };
        let generated = generate(&src.client, &selection)
            .await
            .map_err(|e| crate::pg::PgError::new("read source catalogs", &src.endpoint, e))?;
        src.client
            .batch_execute("commit")
            .await
            .map_err(src.err("end schema snapshot"))?;
        let before = admin::schema_objects(dst).await?;
        let mut pre = generated.pre_data.clone();
        pre.extend(super::reshape::before_copy(spec, &generated.tables));
        step(format!(
            "creating {} on the destination",
            counted(names.len(), "table")
        ));
        run_keeping_existing(dst, &pre).await?;
        let after = admin::schema_objects(dst).await?;
        let created: Vec<crate::state::CreatedObject> = after
            .into_iter()
            .filter(|o| !before.contains(o))
            .map(|(kind, identity)| crate::state::CreatedObject { kind, identity })
            .collect();
        recorder.update(task, |r| {
            r.created_objects.extend(created.iter().cloned());
            for n in &names {
                let name = n.to_string();
                if !r.created_tables.contains(&name) {
                    r.created_tables.push(name);
                }
            }
        })?;
        script = Some((generated, created));
    }

    // 4. The rows.
    if spec.sync_types.full && !leaf.is_empty() {
        step(format!("copying {}", counted(leaf.len(), "table")));
        let jobs = super::copy::jobs(options.jobs, src, dst, step).await?;
        let [qps, rps, bytes_per_second] = CopyJob::limiters(&spec.throttle);
        let job = CopyJob {
            source: source.clone(),
            destination: destination.clone(),
            snapshot: snapshot.clone(),
            tables: super::reshape::copy_tables(
                spec,
                &leaf,
                spec.sync_types.schema,
                existing_targets,
            ),
            binary: spec.sync_types.schema,
            jobs,
            qps,
            rps,
            bytes_per_second,
            keep_existing: spec.conflicting_tables == crate::model::ConflictMode::Ignore,
            sizing: crate::snapshot::ChunkSizing::from_env(),
            resume: BTreeMap::new(),
        };
        let run = super::copy::CopyRun {
            task,
            recorder,
            live: None,
            report,
            initial: false,
            snapshot_lsn: None,
        };
        super::copy::run(&run, job, &tokio_util::sync::CancellationToken::new()).await?;
    }

    // 5. Keys, indexes, triggers, then the reshape, in one transaction.
    if let Some((generated, created)) = &script {
        let reshape = super::reshape::after_post_data_of(
            spec,
            src,
            &names,
            created,
            existing_targets,
            recorder,
            task,
        )
        .await?;
        let mut post = generated.post_data.clone();
        super::reshape::relax_foreign_keys(spec, &names, &mut post);
        post.extend(reshape);
        run_keeping_existing(dst, &post).await?;
        recorder.update(task, |r| {
            for n in &names {
                if let Some(route) = spec.route(&n.schema, &n.name) {
                    let name = route.target.to_string();
                    if !r.created_tables.contains(&name) {
                        r.created_tables.push(name);
                    }
                }
            }
        })?;
    }
    // 6. The hand-over point, per table.
    if spec.sync_types.incremental {
        recorder.update(task, |r| {
            r.table_snapshots.retain(|(n, _)| !names.contains(n));
            r.table_snapshots
                .extend(names.iter().map(|n| (n.clone(), consistent)));
            // Copied whole under one snapshot: no per-chunk points.
            r.chunks
                .retain(|n, _| !names.iter().any(|m| &m.to_string() == n));
        })?;
    }
    drop(session);
    Ok(())
}

/// `alter publication P add|drop table T`; adding a table already in it,
/// or dropping one that is not, is not an error.
async fn alter_publication(
    src: &Connected,
    publication: &str,
    verb: &str,
    table: &QualifiedName,
) -> Result<(), EngineError> {
    let member: bool = src
        .client
        .query_one(
            "select exists (select 1 from pg_publication_tables
                             where pubname = $1 and schemaname = $2 and tablename = $3)",
            &[&publication, &table.schema, &table.name],
        )
        .await
        .map_err(src.err("read publication"))?
        .get(0);
    if member == (verb == "add") {
        return Ok(());
    }
    src.client
        .batch_execute(&format!(
            "alter publication {} {verb} table {}",
            ident(publication),
            qualified(&table.schema, &table.name)
        ))
        .await
        .map_err(src.err(format!("{verb} {table} in publication {publication}")))?;
    Ok(())
}

/// Runs `statements` in one transaction, keeping objects that exist.
async fn run_keeping_existing(
    dst: &Connected,
    statements: &[Statement],
) -> Result<(), EngineError> {
    super::initial::begin_schema(dst).await?;
    super::initial::apply_statements(dst, statements, true).await?;
    dst.client
        .batch_execute("commit")
        .await
        .map_err(dst.err("commit schema"))?;
    Ok(())
}
