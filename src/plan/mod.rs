//! The planner: desired state (HCL) × recorded state (sled) × observed facts
//! (the servers) → an ordered list of actions, and its Terraform-style text.
//! Pure: no I/O; the same inputs give byte-identical plans.

mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use render::render;

use crate::model::{ConflictMode, DesiredState, ObjectSelection, TaskSpec, slot_name_for_task};
use crate::state::{EndpointRecord, RecordedState, TaskRecord};

/// What the servers said during refresh, per recorded task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Facts by task name.
    pub tasks: BTreeMap<String, ObservedTask>,
}

/// Live facts about one recorded task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedTask {
    /// The recorded slot exists on the source (`None`: not looked up).
    pub slot_exists: Option<bool>,
    /// The slot is marked lost (`wal_status = 'lost'`): WAL it needs is gone.
    pub slot_lost: bool,
}

/// The comparable shape of a task: everything whose change matters, and no
/// secrets. Built from a [`TaskSpec`] or a [`TaskRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskShape {
    /// Source endpoint name.
    pub source_name: String,
    /// Source address.
    pub source: EndpointRecord,
    /// Destination endpoint name.
    pub destination_name: String,
    /// Destination address.
    pub destination: EndpointRecord,
    /// `sync_types` in canonical order.
    pub sync_types: Vec<String>,
    /// `conflicting_tables`.
    pub conflicting_tables: ConflictMode,
    /// The retry windows.
    pub retry: crate::model::RetrySpec,
    /// The rate limits.
    pub throttle: crate::model::ThrottleSpec,
    /// Selection, in file order.
    pub objects: Vec<ObjectSelection>,
    /// `mapping` blocks, in file order.
    #[serde(default)]
    pub mappings: Vec<crate::model::Mapping>,
    /// `name_case`.
    #[serde(default)]
    pub name_case: crate::model::NameCase,
    /// The `publication` attribute: a publication created outside pgsync;
    /// `None` when pgsync creates its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<String>,
}

impl TaskShape {
    /// From the configuration.
    pub fn from_spec(spec: &TaskSpec, desired: &DesiredState) -> Option<TaskShape> {
        let source = desired.endpoints.get(&spec.source)?;
        let destination = desired.endpoints.get(&spec.destination)?;
        Some(TaskShape {
            source_name: source.name.clone(),
            source: source.into(),
            destination_name: destination.name.clone(),
            destination: destination.into(),
            sync_types: sync_type_names(spec.sync_types),
            conflicting_tables: spec.conflicting_tables,
            retry: spec.retry,
            throttle: spec.throttle,
            objects: spec.objects.clone(),
            mappings: spec.mappings.clone(),
            name_case: spec.name_case,
            publication: spec.publication.clone(),
        })
    }

    /// From the recorded state.
    pub fn from_record(r: &TaskRecord) -> TaskShape {
        TaskShape {
            source_name: r.source_name.clone(),
            source: r.source.clone(),
            destination_name: r.destination_name.clone(),
            destination: r.destination.clone(),
            sync_types: sync_type_names(r.sync_types),
            conflicting_tables: r.conflicting_tables,
            retry: r.retry,
            throttle: r.throttle,
            objects: r.objects.clone(),
            mappings: r.mappings.clone(),
            name_case: r.name_case,
            publication: if r.publication_external {
                r.publication.clone()
            } else {
                None
            },
        }
    }

    /// One attribute per line, HCL-like; the plan diffs these lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "source             = {:?} ({})",
                self.source_name, self.source
            ),
            format!(
                "destination        = {:?} ({})",
                self.destination_name, self.destination
            ),
            format!("sync_types         = {:?}", self.sync_types),
        ];
        if let Some(p) = &self.publication {
            out.push(format!("publication        = {p:?}"));
        }
        out.extend([
            format!(
                "conflicting_tables = {:?}",
                match self.conflicting_tables {
                    ConflictMode::Error => "error",
                    ConflictMode::Ignore => "ignore",
                }
            ),
            format!(
                "retry              = {{ connection_minutes = {}, other_minutes = {} }}",
                self.retry.connection_minutes, self.retry.other_minutes
            ),
        ]);
        if self.throttle != crate::model::ThrottleSpec::default() {
            out.push(format!("throttle           = {}", self.throttle.describe()));
        }
        if self.name_case != crate::model::NameCase::Default {
            out.push(format!(
                "name_case          = {:?}",
                self.name_case.as_str()
            ));
        }
        for o in &self.objects {
            out.push(object_line(o));
        }
        for m in &self.mappings {
            out.push(format!(
                "mapping {{ match = {:?}, rename = {:?} }}",
                m.pattern, m.rename
            ));
        }
        out
    }

    /// Whether moving from `self` to `other` can be done without re-syncing:
    /// only settings (`conflicting_tables`, `retry`, `throttle`, and the
    /// `operations` of schemas and tables) may differ.
    fn updatable_to(&self, other: &TaskShape) -> bool {
        let without_operations = |objects: &[ObjectSelection]| -> Vec<ObjectSelection> {
            objects
                .iter()
                .cloned()
                .map(|mut o| {
                    match &mut o {
                        ObjectSelection::Schema { operations, .. } => *operations = None,
                        ObjectSelection::Table { options, .. } => options.operations = None,
                    }
                    o
                })
                .collect()
        };
        TaskShape {
            conflicting_tables: other.conflicting_tables,
            retry: other.retry,
            throttle: other.throttle,
            objects: without_operations(&self.objects),
            ..self.clone()
        } == TaskShape {
            objects: without_operations(&other.objects),
            ..other.clone()
        }
    }

    /// Why `self` → `other` forces a re-sync, naming the objects whose
    /// selection, rename, columns or filter changed.
    pub fn replace_reason(&self, other: &TaskShape) -> String {
        let mut why = Vec::new();
        if self.source != other.source || self.source_name != other.source_name {
            why.push("source changed".to_owned());
        }
        if self.destination != other.destination || self.destination_name != other.destination_name
        {
            why.push("destination changed".to_owned());
        }
        if self.sync_types != other.sync_types {
            why.push("sync_types changed".to_owned());
        }
        if self.publication != other.publication {
            why.push("publication changed".to_owned());
        }
        let label = |o: &ObjectSelection| match o {
            ObjectSelection::Schema { name, .. } => format!("schema {name:?}"),
            ObjectSelection::Table { schema, name, .. } => format!("table \"{schema}.{name}\""),
        };
        for o in &other.objects {
            match self.objects.iter().find(|b| label(b) == label(o)) {
                None => why.push(format!("{} added", label(o))),
                Some(b) if object_line(b) != object_line(o) => {
                    let (
                        ObjectSelection::Table { options: x, .. },
                        ObjectSelection::Table { options: y, .. },
                    ) = (b, o)
                    else {
                        why.push(format!("{} changed", label(o)));
                        continue;
                    };
                    let mut what = Vec::new();
                    if x.rename != y.rename {
                        what.push("rename");
                    }
                    if x.columns != y.columns || x.column_map != y.column_map {
                        what.push("columns");
                    }
                    if x.filter != y.filter {
                        what.push("where");
                    }
                    if what.is_empty() {
                        what.push("operations");
                    }
                    why.push(format!("{} {} changed", label(o), what.join(", ")));
                }
                Some(_) => {}
            }
        }
        for b in &self.objects {
            if !other.objects.iter().any(|o| label(o) == label(b)) {
                why.push(format!("{} removed", label(b)));
            }
        }
        if self.mappings != other.mappings {
            why.push("mapping changed".to_owned());
        }
        if self.name_case != other.name_case {
            why.push("name_case changed".to_owned());
        }
        if why.is_empty() {
            why.push("selection changed".to_owned());
        }
        format!("{}; forces re-copy", why.join(", "))
    }
}

/// Tables of a streaming task whose copy a selection change left pending.
fn interrupted_tables(record: &TaskRecord) -> Option<Vec<String>> {
    // Without "full" no table is ever copied: pending is their normal state.
    (record.initial_sync_done() && record.sync_types.full).then(|| {
        record
            .tables
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    crate::state::TableStatus::Pending | crate::state::TableStatus::Copying
                )
            })
            .map(|(t, _)| t.clone())
            .collect()
    })
}

impl TaskShape {
    /// The block-level changes from `self` to `other`, one line each:
    /// `+`, `-`, `-/+` or `~`, the block, and what apply does about it.
    pub fn table_changes(&self, other: &TaskShape) -> Vec<String> {
        let label = |o: &ObjectSelection| match o {
            ObjectSelection::Schema { name, .. } => format!("schema {name:?}"),
            ObjectSelection::Table { schema, name, .. } => format!("table \"{schema}.{name}\""),
        };
        let mut out = Vec::new();
        for o in &other.objects {
            let what = match o {
                ObjectSelection::Schema { .. } => "its tables are",
                ObjectSelection::Table { .. } => "created and",
            };
            let covered = |o: &ObjectSelection| match o {
                ObjectSelection::Table { schema, name, .. } => {
                    self.objects.iter().any(|b| b.selects(schema, name))
                }
                ObjectSelection::Schema { .. } => false,
            };
            match self.objects.iter().find(|b| label(b) == label(o)) {
                // A table block for a table its schema block already selects.
                None if covered(o) => {
                    let ObjectSelection::Table { options, .. } = o else {
                        continue;
                    };
                    if options.rename.is_none()
                        && options.columns.is_none()
                        && options.column_map.is_empty()
                        && options.filter.is_none()
                    {
                        out.push(format!("~ {}: operations change in place", label(o)));
                    } else {
                        out.push(format!(
                            "-/+ {}: settings added; forces re-copy of this table",
                            label(o)
                        ));
                    }
                }
                None if matches!(o, ObjectSelection::Schema { .. }) => {
                    out.push(format!("+ {}: {what} created and copied alone", label(o)))
                }
                None => out.push(format!("+ {}: {what} copied alone", label(o))),
                Some(b) if object_line(b) == object_line(o) => {}
                Some(b) => {
                    let ops_only = {
                        let strip = |o: &ObjectSelection| {
                            let mut o = o.clone();
                            match &mut o {
                                ObjectSelection::Schema { operations, .. } => *operations = None,
                                ObjectSelection::Table { options, .. } => options.operations = None,
                            }
                            o
                        };
                        strip(b) == strip(o)
                    };
                    if ops_only {
                        out.push(format!("~ {}: operations change in place", label(o)));
                    } else {
                        let reason = match (b, o) {
                            (
                                ObjectSelection::Table { options: x, .. },
                                ObjectSelection::Table { options: y, .. },
                            ) => {
                                let mut w = Vec::new();
                                if x.rename != y.rename {
                                    w.push("rename");
                                }
                                if x.columns != y.columns || x.column_map != y.column_map {
                                    w.push("columns");
                                }
                                if x.filter != y.filter {
                                    w.push("where");
                                }
                                w.join(", ")
                            }
                            _ => "exclude_tables or rename".to_owned(),
                        };
                        out.push(format!(
                            "-/+ {}: {reason} changed; forces re-copy of the tables concerned",
                            label(o)
                        ));
                    }
                }
            }
        }
        for b in &self.objects {
            if !other.objects.iter().any(|o| label(o) == label(b)) {
                let still = match b {
                    ObjectSelection::Table { schema, name, .. } => {
                        other.objects.iter().any(|o| o.selects(schema, name))
                    }
                    ObjectSelection::Schema { .. } => false,
                };
                out.push(if still {
                    format!(
                        "-/+ {}: settings removed; forces re-copy of this table if its name, \
                         columns or rows change",
                        label(b)
                    )
                } else {
                    format!(
                        "- {}: no longer streamed; destination tables kept (apply \
                         --drop-removed-tables drops them)",
                        label(b)
                    )
                });
            }
        }
        if self.mappings != other.mappings {
            out.push("-/+ mapping: tables whose destination name changes are re-copied".into());
        }
        if self.name_case != other.name_case {
            out.push(format!(
                "-/+ name_case {:?} -> {:?}: tables whose names change are re-copied",
                self.name_case.as_str(),
                other.name_case.as_str()
            ));
        }
        out
    }
}

/// One `schema` or `table` block as a plan line, with its settings.
fn object_line(o: &ObjectSelection) -> String {
    let mut attrs = Vec::new();
    let ops =
        |o: &Option<crate::model::Operations>| o.map(|o| format!("operations = {:?}", o.names()));
    let (head, attrs) = match o {
        ObjectSelection::Schema {
            name,
            exclude_tables,
            rename,
            operations,
        } => {
            if !exclude_tables.is_empty() {
                attrs.push(format!("exclude_tables = {exclude_tables:?}"));
            }
            if let Some(r) = rename {
                attrs.push(format!("rename = {r:?}"));
            }
            attrs.extend(ops(operations));
            (format!("schema {name:?}"), attrs)
        }
        ObjectSelection::Table {
            schema,
            name,
            options,
        } => {
            if let Some(r) = &options.rename {
                attrs.push(format!("rename = {:?}", r.to_string()));
            }
            if let Some(c) = &options.columns {
                attrs.push(format!("columns = {c:?}"));
            }
            if !options.column_map.is_empty() {
                let pairs: Vec<String> = options
                    .column_map
                    .iter()
                    .map(|(k, v)| {
                        let bare = k
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_alphabetic() || c == '_')
                            && k.chars().all(|c| c.is_alphanumeric() || c == '_');
                        if bare {
                            format!("{k} = {v:?}")
                        } else {
                            format!("{k:?} = {v:?}")
                        }
                    })
                    .collect();
                attrs.push(format!("column_map = {{ {} }}", pairs.join(", ")));
            }
            if let Some(w) = &options.filter {
                attrs.push(format!("where = {w:?}"));
            }
            attrs.extend(ops(&options.operations));
            (format!("table {:?}", format!("{schema}.{name}")), attrs)
        }
    };
    if attrs.is_empty() {
        format!("{head} {{}}")
    } else {
        format!("{head} {{ {} }}", attrs.join(", "))
    }
}

/// "publication \"app_pub\"", or "pgsync's own publication".
fn publication_words(p: Option<&str>) -> String {
    match p {
        Some(p) => format!("publication {p:?}"),
        None => "pgsync's own publication".to_owned(),
    }
}

fn sync_type_names(t: crate::model::SyncTypes) -> Vec<String> {
    let mut v = Vec::new();
    if t.schema {
        v.push("schema".to_owned());
    }
    if t.full {
        v.push("full".to_owned());
    }
    if t.incremental {
        v.push("incremental".to_owned());
    }
    v
}

/// One step of a plan, addressed as `task.NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `+`: create the publication, heartbeat, slot (exported snapshot),
    /// destination schema, copy every table, then stream.
    Create {
        /// Task name.
        task: String,
        /// Desired shape.
        after: TaskShape,
    },
    /// `~`: the initial sync was interrupted; take a fresh snapshot and copy
    /// the tables again (a new slot; destination tables are truncated first).
    ResumeInitialSync {
        /// Task name.
        task: String,
        /// Tables not yet copied (`schema.name`).
        pending_tables: Vec<String>,
    },
    /// `~`: change settings in place; nothing is re-copied.
    Update {
        /// Task name.
        task: String,
        /// Recorded shape.
        before: TaskShape,
        /// Desired shape.
        after: TaskShape,
    },
    /// `~`: the selection changed (tables added, removed, renamed, filtered
    /// or reshaped): only the tables concerned are created and copied alone,
    /// under a snapshot of their own, or stop streaming; the others keep
    /// streaming from where they are.
    Reselect {
        /// Task name.
        task: String,
        /// One line per changed block: sigil, block and consequence.
        changes: Vec<String>,
        /// Recorded shape.
        before: TaskShape,
        /// Desired shape.
        after: TaskShape,
    },
    /// `-/+`: tear the task down (source objects, and the destination tables
    /// it created) and sync again from a fresh snapshot.
    Replace {
        /// Task name.
        task: String,
        /// Why, for people.
        reason: String,
        /// Recorded shape.
        before: TaskShape,
        /// Desired shape.
        after: TaskShape,
    },
    /// `-`: drop the task's slot, publication and helper objects; the
    /// destination's data stays.
    Destroy {
        /// Task name.
        task: String,
        /// Recorded shape.
        before: TaskShape,
    },
}

impl Action {
    /// The task the action is about.
    pub fn task(&self) -> &str {
        match self {
            Action::Create { task, .. }
            | Action::ResumeInitialSync { task, .. }
            | Action::Update { task, .. }
            | Action::Reselect { task, .. }
            | Action::Replace { task, .. }
            | Action::Destroy { task, .. } => task,
        }
    }

    /// Terraform's symbol.
    pub fn sigil(&self) -> &'static str {
        match self {
            Action::Create { .. } => "+",
            Action::ResumeInitialSync { .. } | Action::Update { .. } | Action::Reselect { .. } => {
                "~"
            }
            Action::Replace { .. } => "-/+",
            Action::Destroy { .. } => "-",
        }
    }

    /// One line: sigil, address and what happens, for tests and logs.
    pub fn describe(&self) -> String {
        let what = match self {
            Action::Create { .. } => "create".to_owned(),
            Action::ResumeInitialSync { pending_tables, .. } => {
                format!(
                    "resume initial sync ({} to copy)",
                    crate::model::counted(pending_tables.len(), "table")
                )
            }
            Action::Update { .. } => "update in place".to_owned(),
            Action::Reselect { changes, .. } => {
                format!("update tables in place ({})", changes.join("; "))
            }
            Action::Replace { reason, .. } => format!("replace ({reason})"),
            Action::Destroy { .. } => "destroy".to_owned(),
        };
        format!("{} task.{} {what}", self.sigil(), self.task())
    }
}

/// The ordered actions and the state serial they were computed against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`RecordedState::serial`] at planning time; `apply PLANFILE`
    /// refuses the plan when the state has moved on.
    pub based_on: u64,
    /// Steps, in order: destroys first, then replaces, updates, creates.
    pub actions: Vec<Action>,
}

/// Counts for the `Plan: N to add, N to change, N to destroy.` line
/// (a replacement counts as one add and one destroy, as in Terraform).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Tasks created (and replaced).
    pub add: usize,
    /// Tasks changed in place.
    pub change: usize,
    /// Tasks destroyed (and replaced).
    pub destroy: usize,
}

impl Plan {
    /// Whether the plan does nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The totals line's numbers.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in &self.actions {
            match a {
                Action::Create { .. } => s.add += 1,
                Action::ResumeInitialSync { .. }
                | Action::Update { .. }
                | Action::Reselect { .. } => s.change += 1,
                Action::Replace { .. } => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Destroy { .. } => s.destroy += 1,
            }
        }
        s
    }
}

/// desired × recorded × observed → plan.
pub fn plan(desired: &DesiredState, recorded: &RecordedState, observed: &Observed) -> Plan {
    let mut destroys = Vec::new();
    let mut changes = Vec::new();
    let mut creates = Vec::new();
    for (name, record) in &recorded.tasks {
        if !desired.tasks.contains_key(name) {
            destroys.push(Action::Destroy {
                task: name.clone(),
                before: TaskShape::from_record(record),
            });
        }
    }
    for (name, spec) in &desired.tasks {
        let Some(after) = TaskShape::from_spec(spec, desired) else {
            continue;
        };
        let Some(record) = recorded.tasks.get(name) else {
            creates.push(Action::Create {
                task: name.clone(),
                after,
            });
            continue;
        };
        let before = TaskShape::from_record(record);
        let facts = observed.tasks.get(name).cloned().unwrap_or_default();
        let slot = record
            .slot
            .clone()
            .unwrap_or_else(|| slot_name_for_task(name));
        let slot_gone = record.sync_types.incremental
            && record.initial_sync_done()
            && facts.slot_exists == Some(false);
        let reselectable = before.source == after.source
            && before.source_name == after.source_name
            && before.destination == after.destination
            && before.destination_name == after.destination_name
            && before.sync_types == after.sync_types
            && before.publication == after.publication
            && record.initial_sync_done()
            && !slot_gone
            && !facts.slot_lost;
        if before != after && !before.updatable_to(&after) && reselectable {
            changes.push(Action::Reselect {
                task: name.clone(),
                changes: before.table_changes(&after),
                before,
                after,
            });
        } else if before != after && !before.updatable_to(&after) {
            let only_publication = TaskShape {
                publication: after.publication.clone(),
                ..before.clone()
            }
            .updatable_to(&after);
            let reason = if only_publication {
                // pgoutput reads a publication as of the WAL position it
                // decodes: one created or changed after the slot's position
                // is unknown there or misses changes, so a new slot is taken.
                format!(
                    "the stream moves from {} to {}; a new slot and snapshot are needed, forces re-sync",
                    publication_words(before.publication.as_deref()),
                    publication_words(after.publication.as_deref())
                )
            } else {
                before.replace_reason(&after)
            };
            changes.push(Action::Replace {
                task: name.clone(),
                reason,
                before,
                after,
            });
        } else if slot_gone || facts.slot_lost {
            let why = if facts.slot_lost {
                format!("slot {slot} was invalidated: the source removed WAL it needed")
            } else {
                format!("slot {slot} no longer exists on the source")
            };
            changes.push(Action::Replace {
                task: name.clone(),
                reason: format!("{why}; forces re-sync"),
                before,
                after,
            });
        } else if !record.initial_sync_done() {
            let pending = record
                .tables
                .iter()
                .filter(|(_, s)| !matches!(s, crate::state::TableStatus::Copied { .. }))
                .map(|(t, _)| t.clone())
                .collect();
            changes.push(Action::ResumeInitialSync {
                task: name.clone(),
                pending_tables: pending,
            });
        } else if let Some(pending) = interrupted_tables(record).filter(|p| !p.is_empty()) {
            // A selection change was interrupted after its tables left the
            // stream: they are copied again alone.
            let mut lines: Vec<String> = pending
                .iter()
                .map(|t| format!("-/+ table \"{t}\": its copy was interrupted; copied again alone"))
                .collect();
            if before != after {
                lines.extend(before.table_changes(&after));
            }
            changes.push(Action::Reselect {
                task: name.clone(),
                changes: lines,
                before,
                after,
            });
        } else if before != after {
            changes.push(Action::Update {
                task: name.clone(),
                before,
                after,
            });
        }
    }
    let mut actions = destroys;
    actions.extend(changes);
    actions.extend(creates);
    Plan {
        based_on: recorded.serial,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndpointSpec, SyncTypes};
    use crate::state::{TableStatus, TaskPhase};

    fn endpoint(name: &str, port: u16) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            database: "app".into(),
            user: "postgres".into(),
            password: None,
            sslmode: None,
            tls: Default::default(),
            passfile: None,
        }
    }

    fn desired(tasks: &[(&str, &[&str])]) -> DesiredState {
        let mut d = DesiredState::default();
        d.endpoints.insert("src".into(), endpoint("src", 5432));
        d.endpoints.insert("dst".into(), endpoint("dst", 5433));
        for (name, schemas) in tasks {
            d.tasks.insert(
                (*name).into(),
                TaskSpec {
                    name: (*name).into(),
                    source: "src".into(),
                    destination: "dst".into(),
                    sync_types: SyncTypes {
                        schema: true,
                        full: true,
                        incremental: true,
                    },
                    conflicting_tables: ConflictMode::Error,
                    retry: crate::model::RetrySpec::default(),
                    throttle: crate::model::ThrottleSpec::default(),
                    mappings: vec![],
                    name_case: Default::default(),
                    publication: None,
                    objects: schemas
                        .iter()
                        .map(|s| ObjectSelection::Schema {
                            name: (*s).into(),
                            exclude_tables: vec![],
                            rename: None,
                            operations: None,
                        })
                        .collect(),
                },
            );
        }
        d
    }

    fn recorded_from(d: &DesiredState, phase: TaskPhase) -> RecordedState {
        let mut r = RecordedState {
            serial: 7,
            ..Default::default()
        };
        for (name, spec) in &d.tasks {
            let mut rec = TaskRecord::new(spec, &d.endpoints["src"], &d.endpoints["dst"]);
            rec.slot = Some(slot_name_for_task(name));
            rec.phase = phase.clone();
            rec.tables
                .insert("public.a".into(), TableStatus::Copied { rows: 1, bytes: 1 });
            // A streaming task copied every table.
            rec.tables.insert(
                "public.b".into(),
                if rec.initial_sync_done() {
                    TableStatus::Copied { rows: 1, bytes: 1 }
                } else {
                    TableStatus::Copying
                },
            );
            r.tasks.insert(name.clone(), rec);
        }
        r
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.actions.iter().map(Action::describe).collect()
    }

    #[test]
    fn a_new_task_is_created() {
        let d = desired(&[("app", &["public"])]);
        let p = plan(&d, &RecordedState::default(), &Observed::default());
        assert_eq!(lines(&p), ["+ task.app create"]);
        assert_eq!(
            p.summary(),
            Summary {
                add: 1,
                change: 0,
                destroy: 0
            }
        );
    }

    #[test]
    fn after_a_completed_apply_nothing_changes() {
        let d = desired(&[("app", &["public"])]);
        let r = recorded_from(&d, TaskPhase::Streaming);
        let obs = Observed {
            tasks: [(
                "app".into(),
                ObservedTask {
                    slot_exists: Some(true),
                    slot_lost: false,
                },
            )]
            .into(),
        };
        let p = plan(&d, &r, &obs);
        assert!(p.is_empty(), "{:?}", lines(&p));
        assert_eq!(p.based_on, 7);
    }

    #[test]
    fn an_interrupted_snapshot_is_resumed_with_the_tables_left() {
        let d = desired(&[("app", &["public"])]);
        let r = recorded_from(&d, TaskPhase::Snapshot);
        let p = plan(&d, &r, &Observed::default());
        assert_eq!(
            lines(&p),
            ["~ task.app resume initial sync (1 table to copy)"]
        );
        assert_eq!(
            p.actions[0],
            Action::ResumeInitialSync {
                task: "app".into(),
                pending_tables: vec!["public.b".into()]
            }
        );
    }

    #[test]
    fn a_changed_selection_reselects_in_place_and_a_removed_task_is_destroyed() {
        let old = desired(&[("app", &["public"]), ("old", &["x"])]);
        let r = recorded_from(&old, TaskPhase::Streaming);
        let new = desired(&[("app", &["public", "sales"])]);
        let p = plan(&new, &r, &Observed::default());
        assert_eq!(
            lines(&p),
            [
                "- task.old destroy",
                "~ task.app update tables in place (+ schema \"sales\": its tables are created and copied alone)",
            ]
        );
        assert_eq!(
            p.summary(),
            Summary {
                add: 0,
                change: 1,
                destroy: 1
            }
        );
        // Other sync types cannot be reached table by table: replaced,
        // with the reason.
        let mut other = new.clone();
        other.tasks.get_mut("app").unwrap().sync_types.schema = false;
        let p = plan(&other, &r, &Observed::default());
        assert_eq!(
            lines(&p),
            [
                "- task.old destroy",
                "-/+ task.app replace (sync_types changed, schema \"sales\" added; forces re-copy)",
            ]
        );
        // Before the initial sync finished, the whole task is redone.
        let r = recorded_from(&old, TaskPhase::Snapshot);
        let p = plan(&new, &r, &Observed::default());
        assert_eq!(
            lines(&p)[1],
            "-/+ task.app replace (schema \"sales\" added; forces re-copy)"
        );
    }

    #[test]
    fn a_selection_change_interrupted_after_its_tables_left_the_stream_copies_them_again() {
        let d = desired(&[("app", &["public"])]);
        let mut r = recorded_from(&d, TaskPhase::Streaming);
        r.tasks
            .get_mut("app")
            .unwrap()
            .tables
            .insert("public.c".into(), TableStatus::Pending);
        assert_eq!(
            lines(&plan(&d, &r, &Observed::default())),
            [
                "~ task.app update tables in place (-/+ table \"public.c\": its copy was interrupted; copied again alone)"
            ]
        );
    }

    #[test]
    fn conflict_mode_changes_in_place() {
        let d = desired(&[("app", &["public"])]);
        let r = recorded_from(&d, TaskPhase::Streaming);
        let mut d2 = d.clone();
        d2.tasks.get_mut("app").unwrap().conflicting_tables = ConflictMode::Ignore;
        assert_eq!(
            lines(&plan(&d2, &r, &Observed::default())),
            ["~ task.app update in place"]
        );
    }

    #[test]
    fn a_slot_dropped_outside_pgsync_forces_resync() {
        let d = desired(&[("app", &["public"])]);
        let r = recorded_from(&d, TaskPhase::Streaming);
        let obs = Observed {
            tasks: [(
                "app".into(),
                ObservedTask {
                    slot_exists: Some(false),
                    slot_lost: false,
                },
            )]
            .into(),
        };
        assert_eq!(
            lines(&plan(&d, &r, &obs)),
            [
                "-/+ task.app replace (slot dts_sync_app no longer exists on the source; forces re-sync)"
            ]
        );
    }

    #[test]
    fn a_changed_publication_forces_replacement_and_says_why() {
        let d = desired(&[("app", &["public"])]);
        let r = recorded_from(&d, TaskPhase::Streaming);
        let live = Observed {
            tasks: [(
                "app".into(),
                ObservedTask {
                    slot_exists: Some(true),
                    slot_lost: false,
                },
            )]
            .into(),
        };
        let mut with_pub = d.clone();
        with_pub.tasks.get_mut("app").unwrap().publication = Some("app_pub".into());
        let p = plan(&with_pub, &r, &live);
        assert_eq!(
            lines(&p),
            [
                "-/+ task.app replace (the stream moves from pgsync's own publication to publication \"app_pub\"; a new slot and snapshot are needed, forces re-sync)"
            ]
        );
        let Action::Replace { before, after, .. } = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert!(!before.lines().iter().any(|l| l.starts_with("publication")));
        assert!(
            after
                .lines()
                .contains(&"publication        = \"app_pub\"".to_owned())
        );

        // Recorded with the publication: nothing to do; another name is a
        // replacement again.
        let mut r2 = r.clone();
        let rec = r2.tasks.get_mut("app").unwrap();
        rec.publication = Some("app_pub".into());
        rec.publication_external = true;
        assert!(plan(&with_pub, &r2, &live).is_empty());
        let mut other = with_pub.clone();
        other.tasks.get_mut("app").unwrap().publication = Some("Other Pub".into());
        assert_eq!(
            lines(&plan(&other, &r2, &live)),
            [
                "-/+ task.app replace (the stream moves from publication \"app_pub\" to publication \"Other Pub\"; a new slot and snapshot are needed, forces re-sync)"
            ]
        );
        // pgsync's own publication is recorded but is no attribute.
        let mut r3 = r.clone();
        r3.tasks.get_mut("app").unwrap().publication = Some("dts_pub_app".into());
        assert!(plan(&d, &r3, &live).is_empty());
        // A publication change together with a selection change is a
        // replacement for the selection.
        let mut both = with_pub.clone();
        both.tasks
            .get_mut("app")
            .unwrap()
            .objects
            .push(ObjectSelection::Schema {
                name: "sales".into(),
                exclude_tables: vec![],
                rename: None,
                operations: None,
            });
        assert_eq!(
            lines(&plan(&both, &r, &live)),
            ["-/+ task.app replace (publication changed, schema \"sales\" added; forces re-copy)"]
        );
    }
}
