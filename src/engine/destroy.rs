//! Removing a task: its slot, publication (unless it was created outside
//! pgsync: the task's `publication` attribute) and heartbeat row on the source,
//! its progress row on the destination, and (only when asked) the
//! destination tables it created. Every step is idempotent, so an
//! interrupted destroy is simply run again.

use super::{EngineError, Event, Recorder, Reporter};
use crate::model::{DesiredState, EndpointSpec};
use crate::pg::{admin, connect};
use crate::sql::{helpers, qualified};
use crate::state::{EndpointRecord, TaskRecord};

/// The endpoint to use for a recorded task: the configuration's (it has the
/// password) when it still names the same server, else the recorded address.
fn endpoint_for(desired: &DesiredState, name: &str, rec: &EndpointRecord) -> EndpointSpec {
    match desired.endpoints.get(name) {
        Some(e) if EndpointRecord::from(e) == *rec => e.clone(),
        _ => EndpointSpec {
            name: name.to_owned(),
            host: rec.host.clone(),
            port: rec.port,
            database: rec.database.clone(),
            user: rec.user.clone(),
            password: None,
            sslmode: None,
            tls: Default::default(),
            passfile: None,
        },
    }
}

/// Tears `record` down and removes it from state.
///
/// # Errors
/// [`EngineError`] when a server cannot be reached or refuses a drop; the
/// record stays, so destroy can be run again.
pub async fn destroy_task(
    desired: &DesiredState,
    record: &TaskRecord,
    recorder: &Recorder,
    drop_destination_tables: bool,
    report: &Reporter,
) -> Result<(), EngineError> {
    let task = record.name.as_str();
    let step = |m: String| {
        report(Event::Step {
            task: task.to_owned(),
            message: m,
        })
    };
    let source = endpoint_for(desired, &record.source_name, &record.source);
    let destination = endpoint_for(desired, &record.destination_name, &record.destination);

    let src = connect(&source).await?;
    if let Some(slot) = &record.slot {
        step(format!("dropping replication slot {slot}"));
        admin::drop_slot(&src, slot).await?;
    }
    match &record.publication {
        Some(publication) if record.publication_external => step(format!(
            "leaving publication {publication:?} in place: it was created outside pgsync (the task's `publication`)"
        )),
        Some(publication) => {
            step(format!("dropping publication {publication}"));
            admin::drop_publication(&src, publication).await?;
        }
        None => {}
    }
    if record.ddl_capture
        && let Some(publication) = &record.publication
    {
        step(
            "removing DDL capture registration (and the event triggers when no task is left)"
                .into(),
        );
        crate::pg::ddl_capture::uninstall(&src, publication).await?;
    }
    if record.heartbeat {
        step("removing heartbeat row (and table when no task is left)".into());
        admin::drop_heartbeat(&src, task).await?;
    }

    let dst = connect(&destination).await?;
    if record.progress {
        let table = qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE);
        step(format!(
            "removing progress row from {}.{}",
            helpers::SCHEMA,
            helpers::PROGRESS_TABLE
        ));
        let exists: bool = dst
            .client
            .query_one("select to_regclass($1) is not null", &[&table])
            .await
            .map_err(dst.err("look for progress table"))?
            .get(0);
        if exists {
            dst.client
                .execute(
                    &format!("delete from {table} where task_name = $1"),
                    &[&task],
                )
                .await
                .map_err(dst.err("delete progress row"))?;
            dst.client
                .batch_execute(&format!(
                    "do $$ begin if not exists (select 1 from {table}) then drop table {table}; end if; end $$"
                ))
                .await
                .map_err(dst.err("drop progress table"))?;
        }
    }
    if drop_destination_tables && !record.created_objects.is_empty() {
        let objects: Vec<(String, String)> = record
            .created_objects
            .iter()
            .map(|o| (o.kind.clone(), o.identity.clone()))
            .collect();
        step(format!(
            "dropping the {} the task created",
            crate::model::counted(objects.len(), "destination object")
        ));
        crate::pg::admin::drop_schema_objects(&dst, &objects).await?;
    } else if drop_destination_tables && !record.created_tables.is_empty() {
        let list: Vec<String> = record
            .created_tables
            .iter()
            .filter_map(|t| t.split_once('.'))
            .map(|(s, n)| qualified(s, n))
            .collect();
        step(format!(
            "dropping {} destination tables the task created",
            list.len()
        ));
        dst.client
            .batch_execute(&format!("drop table if exists {} cascade", list.join(", ")))
            .await
            .map_err(dst.err("drop destination tables"))?;
    }
    recorder.remove(task)?;
    step("destroyed".into());
    Ok(())
}
