//! Where each source table goes: its destination name, its columns, its
//! row filter and the operations applied to it (the `rename`, `columns`,
//! `column_map`, `where`, `operations`, `mapping` and `name_case` settings of
//! a task, resolved for one table). Pure.
//!
//! Precedence, for one source table `s.t`:
//! 1. a `table "s.t"` block, else the first `schema "s"` block that does not
//!    exclude `t` (a table not taken by either is not synchronized);
//! 2. the destination name: the table block's `rename`, else the first
//!    `mapping` whose `match` matches `s.t` (or, for a pattern without a
//!    dot, the schema `s`), else the schema block's `rename` for the schema
//!    part, else the source name;
//! 3. `name_case` changes every name part that was *not* written out by a
//!    `rename`, `mapping` or `column_map` (those are taken verbatim).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ObjectSelection, QualifiedName, TaskSpec};

/// The kinds of change a table's `operations` lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Operations {
    /// Row inserts (stream).
    pub insert: bool,
    /// Row updates (stream).
    pub update: bool,
    /// Row deletes (stream).
    pub delete: bool,
    /// `TRUNCATE` (stream).
    pub truncate: bool,
    /// Captured DDL (stream).
    pub ddl: bool,
}

impl Default for Operations {
    fn default() -> Self {
        Operations::ALL
    }
}

impl Operations {
    /// Every kind: what a table without `operations` gets.
    pub const ALL: Operations = Operations {
        insert: true,
        update: true,
        delete: true,
        truncate: true,
        ddl: true,
    };

    /// The HCL names, in canonical order.
    pub const NAMES: [&'static str; 5] = ["insert", "update", "delete", "truncate", "ddl"];

    /// From HCL names (already validated against [`Operations::NAMES`]).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Operations {
        let mut ops = Operations {
            insert: false,
            update: false,
            delete: false,
            truncate: false,
            ddl: false,
        };
        for n in names {
            match n {
                "insert" => ops.insert = true,
                "update" => ops.update = true,
                "delete" => ops.delete = true,
                "truncate" => ops.truncate = true,
                "ddl" => ops.ddl = true,
                _ => {}
            }
        }
        ops
    }

    /// The HCL names of the kinds let through, in canonical order.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.insert,
            self.update,
            self.delete,
            self.truncate,
            self.ddl,
        ];
        Operations::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The per-table settings of a `table` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableOptions {
    /// `rename = "SCHEMA.NAME"`: the destination table.
    #[serde(default)]
    pub rename: Option<QualifiedName>,
    /// `columns`: the source columns synchronized, in the order given
    /// (`None`: all of them).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// `column_map`: source column → destination column.
    #[serde(default)]
    pub column_map: BTreeMap<String, String>,
    /// `where`: a boolean SQL expression over the source row.
    #[serde(default)]
    pub filter: Option<String>,
    /// `operations` (`None`: all).
    #[serde(default)]
    pub operations: Option<Operations>,
}

/// A `mapping { match, rename }` block (DTS "batch edit"). `*` in `match`
/// stands for any run of characters; the runs matched replace the `*`s of
/// `rename` in order. A pattern with a dot matches `schema.table`; one
/// without matches schema names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mapping {
    /// The glob matched against source names.
    pub pattern: String,
    /// The destination name, with `*` for the matched runs.
    pub rename: String,
}

/// `name_case`: what happens to the letter case of destination names that
/// are derived from source names (not written out by a rename).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NameCase {
    /// DTS's default policy; for PostgreSQL → PostgreSQL the same as
    /// `Source`.
    #[default]
    Default,
    /// Names exactly as in the source catalog, mixed case kept (quoted).
    Source,
    /// The destination's own convention for unquoted names: PostgreSQL folds
    /// them to lower case, so this is `Lower`.
    Destination,
    /// Lower case.
    Lower,
    /// Upper case.
    Upper,
}

impl NameCase {
    /// The HCL values.
    pub const NAMES: [&'static str; 5] = ["default", "source", "destination", "lower", "upper"];

    /// The HCL value.
    pub fn as_str(self) -> &'static str {
        match self {
            NameCase::Default => "default",
            NameCase::Source => "source",
            NameCase::Destination => "destination",
            NameCase::Lower => "lower",
            NameCase::Upper => "upper",
        }
    }

    /// `name` in this case.
    pub fn apply(self, name: &str) -> String {
        match self {
            NameCase::Default | NameCase::Source => name.to_owned(),
            NameCase::Destination | NameCase::Lower => name.to_lowercase(),
            NameCase::Upper => name.to_uppercase(),
        }
    }
}

/// Where one source table goes, and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The source table.
    pub source: QualifiedName,
    /// The destination table.
    pub target: QualifiedName,
    /// The source columns synchronized (`None`: all).
    pub columns: Option<Vec<String>>,
    /// Destination name of each source column that is renamed or recased
    /// (absent: same name).
    pub column_map: BTreeMap<String, String>,
    /// The row filter (`where`), a boolean SQL expression over the source
    /// row.
    pub filter: Option<String>,
    /// The kinds of change applied.
    pub operations: Operations,
    name_case: NameCase,
}

impl Route {
    /// A table synchronized whole, under its own name.
    pub fn identity(name: QualifiedName) -> Route {
        Route {
            source: name.clone(),
            target: name,
            columns: None,
            column_map: BTreeMap::new(),
            filter: None,
            operations: Operations::ALL,
            name_case: NameCase::Default,
        }
    }

    /// Whether source column `column` is synchronized.
    pub fn selects_column(&self, column: &str) -> bool {
        self.columns
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == column))
    }

    /// The destination name of source column `column`, `None` when it is
    /// not synchronized.
    pub fn target_column(&self, column: &str) -> Option<String> {
        if !self.selects_column(column) {
            return None;
        }
        Some(
            self.column_map
                .get(column)
                .cloned()
                .unwrap_or_else(|| self.name_case.apply(column)),
        )
    }

    /// Whether the destination table differs from the source's in name or
    /// columns (a table created by schema sync is then reshaped).
    pub fn reshapes(&self) -> bool {
        self.source != self.target
            || self.columns.is_some()
            || !self.column_map.is_empty()
            || !matches!(self.name_case, NameCase::Default | NameCase::Source)
    }

    /// Whether `other` lands in the same table with the same columns, names
    /// and rows (only `operations` may differ): else the table must be
    /// copied again.
    pub fn same_shape(&self, other: &Route) -> bool {
        self.target == other.target
            && self.columns == other.columns
            && self.column_map == other.column_map
            && self.filter == other.filter
            && self.name_case == other.name_case
    }

    /// Whether the route changes nothing but passes every row and change
    /// through as the source has it.
    pub fn is_plain(&self) -> bool {
        !self.reshapes() && self.filter.is_none() && self.operations == Operations::ALL
    }
}

/// The runs of `name` matched by the `*`s of `pattern`, in order; `None`
/// when it does not match.
pub fn glob_captures(pattern: &str, name: &str) -> Option<Vec<String>> {
    fn go(p: &[char], n: &[char], caps: &mut Vec<String>) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => {
                for i in (0..=n.len()).rev() {
                    caps.push(n[..i].iter().collect());
                    if go(rest, &n[i..], caps) {
                        return true;
                    }
                    caps.pop();
                }
                false
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..], caps),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let mut caps = Vec::new();
    go(&p, &n, &mut caps).then_some(caps)
}

/// `rename` with its `*`s replaced by `captures` in order (a `*` without a
/// capture is dropped).
fn fill(rename: &str, captures: &[String]) -> String {
    let mut out = String::new();
    let mut caps = captures.iter();
    for c in rename.chars() {
        if c == '*' {
            if let Some(cap) = caps.next() {
                out.push_str(cap);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl TaskSpec {
    /// The selection block that takes table `schema.name`: the `table`
    /// block for it, else the first `schema` block that selects it.
    pub fn selection_of(&self, schema: &str, name: &str) -> Option<&ObjectSelection> {
        self.objects
            .iter()
            .find(|o| matches!(o, ObjectSelection::Table { .. }) && o.selects(schema, name))
            .or_else(|| self.objects.iter().find(|o| o.selects(schema, name)))
    }

    /// Where source table `schema.name` goes; `None` when the task does not
    /// select it.
    pub fn route(&self, schema: &str, name: &str) -> Option<Route> {
        let selection = self.selection_of(schema, name)?;
        let case = self.name_case;
        let source = QualifiedName::new(schema, name);
        // Table-level mappings (`match = "s.t*"`); schema-level ones and
        // schema renames are in `target_schema`.
        let mapped = || {
            self.mappings.iter().find_map(|m| {
                if !m.pattern.contains('.') {
                    return None;
                }
                let caps = glob_captures(&m.pattern, &source.to_string())?;
                let full = fill(&m.rename, &caps);
                let (s, n) = full.split_once('.')?;
                Some(QualifiedName::new(s, n))
            })
        };
        let (rename, columns, column_map, filter, operations) = match selection {
            ObjectSelection::Table { options, .. } => (
                options.rename.clone(),
                options.columns.clone(),
                options.column_map.clone(),
                options.filter.clone(),
                options.operations,
            ),
            ObjectSelection::Schema { operations, .. } => {
                (None, None, BTreeMap::new(), None, *operations)
            }
        };
        // A table block without `operations` takes its schema block's.
        let operations = operations.or_else(|| {
            self.objects.iter().find_map(|o| match o {
                ObjectSelection::Schema {
                    operations: Some(ops),
                    ..
                } if o.selects(schema, name) => Some(*ops),
                _ => None,
            })
        });
        let target = rename
            .or_else(mapped)
            .unwrap_or_else(|| QualifiedName::new(self.target_schema(schema), case.apply(name)));
        Some(Route {
            source,
            target,
            columns,
            column_map,
            filter,
            operations: operations.unwrap_or_default(),
            name_case: case,
        })
    }

    /// The destination schema of source schema `schema` for objects other
    /// than tables (views, functions, types…): a schema block's `rename`,
    /// else a schema-level `mapping`, else the cased name.
    pub fn target_schema(&self, schema: &str) -> String {
        let explicit = self.objects.iter().find_map(|o| match o {
            ObjectSelection::Schema {
                name,
                rename: Some(r),
                ..
            } if name == schema => Some(r.clone()),
            _ => None,
        });
        explicit
            .or_else(|| {
                self.mappings.iter().find_map(|m| {
                    if m.pattern.contains('.') {
                        return None;
                    }
                    glob_captures(&m.pattern, schema).map(|c| fill(&m.rename, &c))
                })
            })
            .unwrap_or_else(|| self.name_case.apply(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConflictMode, RetrySpec, SyncTypes, ThrottleSpec};

    fn task(objects: Vec<ObjectSelection>, mappings: Vec<Mapping>, case: NameCase) -> TaskSpec {
        TaskSpec {
            name: "t".into(),
            source: "a".into(),
            destination: "b".into(),
            sync_types: SyncTypes {
                schema: true,
                full: true,
                incremental: true,
            },
            conflicting_tables: ConflictMode::Error,
            objects,
            retry: RetrySpec::default(),
            throttle: ThrottleSpec::default(),
            mappings,
            name_case: case,
            publication: None,
        }
    }

    fn schema(name: &str, rename: Option<&str>) -> ObjectSelection {
        ObjectSelection::Schema {
            name: name.into(),
            exclude_tables: vec!["tmp_*".into()],
            rename: rename.map(Into::into),
            operations: None,
        }
    }

    #[test]
    fn captures_follow_the_stars_in_order() {
        assert_eq!(
            glob_captures("staging.tmp_*", "staging.tmp_x"),
            Some(vec!["x".to_owned()])
        );
        assert_eq!(
            glob_captures("*.a*", "s.abc"),
            Some(vec!["s".to_owned(), "bc".to_owned()])
        );
        assert_eq!(glob_captures("staging.tmp_*", "staging.x"), None);
        assert_eq!(fill("scratch.*", &["x".to_owned()]), "scratch.x");
    }

    #[test]
    fn a_table_block_wins_over_its_schema_and_a_mapping() {
        let spec = task(
            vec![
                schema("sales", Some("reporting")),
                ObjectSelection::Table {
                    schema: "sales".into(),
                    name: "orders".into(),
                    options: TableOptions {
                        rename: Some(QualifiedName::new("r2", "o2")),
                        columns: Some(vec!["id".into(), "amount".into()]),
                        column_map: [("amount".to_owned(), "total".to_owned())].into(),
                        filter: Some("amount > 0".into()),
                        operations: Some(Operations::from_names(["insert"])),
                    },
                },
            ],
            vec![Mapping {
                pattern: "sales.*".into(),
                rename: "m.*".into(),
            }],
            NameCase::Upper,
        );
        let r = spec.route("sales", "orders").unwrap();
        assert_eq!(r.target, QualifiedName::new("r2", "o2"));
        assert_eq!(r.target_column("amount").as_deref(), Some("total"));
        assert_eq!(r.target_column("id").as_deref(), Some("ID"));
        assert_eq!(r.target_column("note"), None);
        assert_eq!(r.filter.as_deref(), Some("amount > 0"));
        assert!(!r.operations.update);
        // Other tables of the schema: the mapping, verbatim.
        let r = spec.route("sales", "items").unwrap();
        assert_eq!(r.target, QualifiedName::new("m", "items"));
        assert!(spec.route("sales", "tmp_1").is_none());
        assert!(spec.route("other", "x").is_none());
    }

    #[test]
    fn schema_rename_and_case_apply_to_derived_parts_only() {
        let spec = task(vec![schema("Sales", Some("App"))], vec![], NameCase::Lower);
        let r = spec.route("Sales", "Orders").unwrap();
        assert_eq!(r.target, QualifiedName::new("App", "orders"));
        assert_eq!(r.target_column("Amount").as_deref(), Some("amount"));
        assert!(r.reshapes());
        assert_eq!(spec.target_schema("Sales"), "App");
        let plain = task(vec![schema("s", None)], vec![], NameCase::Default);
        let r = plain.route("s", "Mixed").unwrap();
        assert!(r.is_plain());
        assert_eq!(r.target, QualifiedName::new("s", "Mixed"));
    }

    #[test]
    fn schema_level_mappings_move_whole_schemas() {
        let spec = task(
            vec![schema("tenant_1", None)],
            vec![Mapping {
                pattern: "tenant_*".into(),
                rename: "t*".into(),
            }],
            NameCase::Default,
        );
        assert_eq!(
            spec.route("tenant_1", "users").unwrap().target,
            QualifiedName::new("t1", "users")
        );
        assert_eq!(spec.target_schema("tenant_1"), "t1");
    }

    #[test]
    fn operations_round_trip_their_names() {
        let ops = Operations::from_names(["delete", "insert"]);
        assert_eq!(ops.names(), vec!["insert", "delete"]);
        assert_eq!(Operations::ALL.names(), Operations::NAMES.to_vec());
    }
}
