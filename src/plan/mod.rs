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
        for o in &self.objects {
            out.push(match o {
                ObjectSelection::Schema {
                    name,
                    exclude_tables,
                } if exclude_tables.is_empty() => {
                    format!("schema {name:?} {{}}")
                }
                ObjectSelection::Schema {
                    name,
                    exclude_tables,
                } => {
                    format!("schema {name:?} {{ exclude_tables = {exclude_tables:?} }}")
                }
                ObjectSelection::Table { schema, name } => {
                    format!("table {:?} {{}}", format!("{schema}.{name}"))
                }
            });
        }
        out
    }

    /// Whether moving from `self` to `other` can be done without re-syncing:
    /// only settings (`conflicting_tables`, `retry`, `throttle`) may differ.
    fn updatable_to(&self, other: &TaskShape) -> bool {
        TaskShape {
            conflicting_tables: other.conflicting_tables,
            retry: other.retry,
            throttle: other.throttle,
            ..self.clone()
        } == *other
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
            | Action::Replace { task, .. }
            | Action::Destroy { task, .. } => task,
        }
    }

    /// Terraform's symbol.
    pub fn sigil(&self) -> &'static str {
        match self {
            Action::Create { .. } => "+",
            Action::ResumeInitialSync { .. } | Action::Update { .. } => "~",
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
                Action::ResumeInitialSync { .. } | Action::Update { .. } => s.change += 1,
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
        if before != after && !before.updatable_to(&after) {
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
                "selection, endpoints or sync types changed; forces re-sync".into()
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
                    publication: None,
                    objects: schemas
                        .iter()
                        .map(|s| ObjectSelection::Schema {
                            name: (*s).into(),
                            exclude_tables: vec![],
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
            rec.tables.insert("public.b".into(), TableStatus::Copying);
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
    fn a_changed_selection_forces_replacement_and_a_removed_task_is_destroyed() {
        let old = desired(&[("app", &["public"]), ("old", &["x"])]);
        let r = recorded_from(&old, TaskPhase::Streaming);
        let new = desired(&[("app", &["public", "sales"])]);
        let p = plan(&new, &r, &Observed::default());
        assert_eq!(
            lines(&p),
            [
                "- task.old destroy",
                "-/+ task.app replace (selection, endpoints or sync types changed; forces re-sync)",
            ]
        );
        assert_eq!(
            p.summary(),
            Summary {
                add: 1,
                change: 0,
                destroy: 2
            }
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
            });
        assert_eq!(
            lines(&plan(&both, &r, &live)),
            ["-/+ task.app replace (selection, endpoints or sync types changed; forces re-sync)"]
        );
    }
}
