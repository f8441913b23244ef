//! Terraform-style plan text: one block per action, attribute lines diffed
//! with `similar`, and the `Plan: N to add, N to change, N to destroy.` line.

use std::fmt::{self, Write};

use similar::{ChangeTag, TextDiff};

use super::{Action, Plan};

/// Renders `plan` as plain text (no colour).
///
/// # Errors
/// Only those of the writer.
pub fn render(plan: &Plan, out: &mut impl Write) -> fmt::Result {
    if plan.is_empty() {
        return writeln!(
            out,
            "No changes. Configuration, recorded state and databases agree."
        );
    }
    writeln!(out, "pgsync will perform the following actions:\n")?;
    for action in &plan.actions {
        let task = action.task();
        match action {
            Action::Create { after, .. } => {
                writeln!(
                    out,
                    "  # task.{task} will be created: {}",
                    creation_steps(task, after)
                )?;
                block(out, "+", task, &[], &after.lines())?;
            }
            Action::ResumeInitialSync { pending_tables, .. } => {
                writeln!(
                    out,
                    "  # task.{task} initial sync was interrupted; the tables below are copied (under a new snapshot; tables already copied keep their rows while the slot survives)"
                )?;
                writeln!(out, "  ~ task {task:?} {{")?;
                writeln!(out, "      ~ initial sync = \"incomplete\" -> \"complete\"")?;
                for t in pending_tables {
                    writeln!(out, "      ~ table {t:?}: copy")?;
                }
                writeln!(out, "    }}")?;
            }
            Action::Update { before, after, .. } => {
                writeln!(out, "  # task.{task} will be updated in place")?;
                block(out, "~", task, &before.lines(), &after.lines())?;
            }
            Action::Reselect {
                changes,
                before,
                after,
                ..
            } => {
                writeln!(
                    out,
                    "  # task.{task} will be updated in place; only the tables below are touched, the others keep streaming:"
                )?;
                for c in changes {
                    writeln!(out, "  #   {c}")?;
                }
                block(out, "~", task, &before.lines(), &after.lines())?;
            }
            Action::Replace {
                reason,
                before,
                after,
                ..
            } => {
                writeln!(out, "  # task.{task} must be replaced: {reason}")?;
                block(out, "-/+", task, &before.lines(), &after.lines())?;
            }
            Action::Destroy { before, .. } => {
                match &before.publication {
                    None => writeln!(
                        out,
                        "  # task.{task} will be destroyed: slot, publication and helper objects dropped; destination data kept"
                    )?,
                    Some(p) => writeln!(
                        out,
                        "  # task.{task} will be destroyed: slot and helper objects dropped; publication {p:?} kept (not created by pgsync); destination data kept"
                    )?,
                }
                block(out, "-", task, &before.lines(), &[])?;
            }
        }
        writeln!(out)?;
    }
    let s = plan.summary();
    writeln!(
        out,
        "Plan: {} to add, {} to change, {} to destroy.",
        s.add, s.change, s.destroy
    )
}

/// What creating a task does, in order, as its sync types decide.
fn creation_steps(task: &str, shape: &super::TaskShape) -> String {
    let has = |t: &str| shape.sync_types.iter().any(|s| s == t);
    let mut steps = Vec::new();
    if has("incremental") {
        steps.push(match &shape.publication {
            None => format!("publication, heartbeat, DDL capture, slot dts_sync_{task}"),
            Some(p) => format!(
                "slot dts_sync_{task} reading publication {p:?} (not created by pgsync), heartbeat"
            ),
        });
    }
    if has("schema") {
        steps.push("schema".to_owned());
    }
    if has("full") {
        steps.push("full copy".to_owned());
    }
    if has("incremental") {
        steps.push("stream".to_owned());
    }
    steps.join(", ")
}

fn block(
    out: &mut impl Write,
    sigil: &str,
    task: &str,
    before: &[String],
    after: &[String],
) -> fmt::Result {
    writeln!(out, "  {sigil} task {task:?} {{")?;
    let old = before.join("\n") + "\n";
    let new = after.join("\n") + "\n";
    let old = if before.is_empty() {
        String::new()
    } else {
        old
    };
    let new = if after.is_empty() { String::new() } else { new };
    for change in TextDiff::from_lines(&old, &new).iter_all_changes() {
        let mark = match change.tag() {
            ChangeTag::Delete => "-",
            ChangeTag::Insert => "+",
            ChangeTag::Equal => " ",
        };
        writeln!(
            out,
            "      {mark} {}",
            change.value().trim_end_matches('\n')
        )?;
    }
    writeln!(out, "    }}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConflictMode, ObjectSelection};
    use crate::plan::TaskShape;
    use crate::state::EndpointRecord;

    fn shape(conflict: ConflictMode) -> TaskShape {
        let ep = |port| EndpointRecord {
            host: "h".into(),
            port,
            database: "app".into(),
            user: "u".into(),
        };
        TaskShape {
            source_name: "src".into(),
            source: ep(1),
            destination_name: "dst".into(),
            destination: ep(2),
            sync_types: vec!["full".into()],
            conflicting_tables: conflict,
            retry: crate::model::RetrySpec::default(),
            throttle: crate::model::ThrottleSpec::default(),
            mappings: vec![],
            name_case: Default::default(),
            objects: vec![ObjectSelection::Table {
                schema: "public".into(),
                name: "t".into(),
                options: Default::default(),
            }],
            publication: None,
        }
    }

    #[test]
    fn renders_an_update_as_a_line_diff_with_totals() {
        let plan = Plan {
            based_on: 1,
            actions: vec![Action::Update {
                task: "app".into(),
                before: shape(ConflictMode::Error),
                after: shape(ConflictMode::Ignore),
            }],
        };
        let mut text = String::new();
        render(&plan, &mut text).unwrap();
        assert_eq!(
            text,
            r#"pgsync will perform the following actions:

  # task.app will be updated in place
  ~ task "app" {
        source             = "src" (u@h:1/app)
        destination        = "dst" (u@h:2/app)
        sync_types         = ["full"]
      - conflicting_tables = "error"
      + conflicting_tables = "ignore"
        retry              = { connection_minutes = 720, other_minutes = 10 }
        table "public.t" {}
    }

Plan: 0 to add, 1 to change, 0 to destroy.
"#
        );
    }

    #[test]
    fn an_empty_plan_says_no_changes() {
        let mut text = String::new();
        render(
            &Plan {
                based_on: 0,
                actions: vec![],
            },
            &mut text,
        )
        .unwrap();
        assert_eq!(
            text,
            "No changes. Configuration, recorded state and databases agree.\n"
        );
    }

    #[test]
    fn a_task_reading_an_outside_publication_says_so_when_created_and_destroyed() {
        let mut after = shape(ConflictMode::Error);
        after.sync_types = vec!["full".into(), "incremental".into()];
        after.publication = Some("app_pub".into());
        let plan = Plan {
            based_on: 1,
            actions: vec![
                Action::Destroy {
                    task: "old".into(),
                    before: after.clone(),
                },
                Action::Create {
                    task: "app".into(),
                    after,
                },
            ],
        };
        let mut text = String::new();
        render(&plan, &mut text).unwrap();
        assert!(
            text.contains("  # task.old will be destroyed: slot and helper objects dropped; publication \"app_pub\" kept (not created by pgsync); destination data kept\n"),
            "{text}"
        );
        assert!(
            text.contains("  # task.app will be created: slot dts_sync_app reading publication \"app_pub\" (not created by pgsync), heartbeat, full copy, stream\n"),
            "{text}"
        );
        assert!(
            text.contains("      + publication        = \"app_pub\"\n"),
            "{text}"
        );
    }
}
