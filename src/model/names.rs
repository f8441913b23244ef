//! Names of relations and of the objects pgsync creates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema-qualified relation name, unquoted (the catalog spelling:
/// `pg_namespace.nspname` and `pg_class.relname`). Quote it with
/// [`crate::sql::ident`] before it reaches SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    /// `pg_namespace.nspname`.
    pub schema: String,
    /// `pg_class.relname`.
    pub name: String,
}

impl QualifiedName {
    /// Builds a name from its two parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for QualifiedName {
    /// `schema.name`, unquoted; for people, not for SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// The replication slot of a task: `dts_sync_<task>` (the DTS contract).
///
/// Slot names may hold only lower-case letters, digits and `_`, at most 63
/// bytes (PostgreSQL docs §48.2.3 / `ReplicationSlotValidateName`), so other
/// characters become `_` and the name is cut to 63 bytes. Task names are
/// validated by `config` so that two tasks never share a slot.
pub fn slot_name_for_task(task: &str) -> String {
    helper_name("dts_sync_", task)
}

/// The temporary slot that exports the snapshot of tables copied after a
/// task started streaming (a selection change, a resumed copy):
/// `dts_tmp_<task>`, with the slot's rules. The server drops it with its
/// session.
pub fn temporary_slot_name_for_task(task: &str) -> String {
    helper_name("dts_tmp_", task)
}

/// The publication of a task: `dts_pub_<task>`, with the slot's rules.
pub fn publication_name_for_task(task: &str) -> String {
    helper_name("dts_pub_", task)
}

fn helper_name(prefix: &str, task: &str) -> String {
    let mut name = String::from(prefix);
    for c in task.chars() {
        let c = c.to_ascii_lowercase();
        name.push(if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        });
    }
    name.truncate(63);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_the_dts_contract_and_postgres_rules() {
        assert_eq!(
            slot_name_for_task("app_to_reporting"),
            "dts_sync_app_to_reporting"
        );
        assert_eq!(slot_name_for_task("App-2"), "dts_sync_app_2");
        assert_eq!(slot_name_for_task(&"x".repeat(80)).len(), 63);
    }
}
