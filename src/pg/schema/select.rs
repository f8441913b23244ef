//! Which objects to create, and in which order. Pure: works on a [`Catalog`].
//!
//! 1. The selection: every object of the selected schemas, plus the selected
//!    tables, plus the partitions of any selected partitioned table and the
//!    serial sequences a selected table owns. Excluded tables never enter.
//! 2. The closure over `pg_depend`: whatever a selected object (or one of a
//!    selected table's indexes, constraints, triggers, rules, policies) needs
//!    that is a schema, an extension, a collation, a type, a function or a
//!    sequence comes along, wherever it lives. Extension members map to their
//!    extension. Tables and views are never pulled in this way: an object
//!    that needs an unselected table or view is left out, with a warning.
//! 3. The order: a topological sort of the `pg_depend` edges between chosen
//!    objects, ties broken by kind, schema and name (see [`super::graph`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::SchemaSelection;
use super::catalog::{
    Catalog, PG_ATTRDEF, PG_CLASS, PG_COLLATION, PG_CONSTRAINT, PG_EXTENSION, PG_NAMESPACE,
    PG_POLICY, PG_PROC, PG_REWRITE, PG_TRIGGER, PG_TYPE,
};
use super::graph::toposort;
use super::objects::{self, Kind, PG_AMOP, PG_AMPROC};

/// One object created before the data copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Node {
    /// `pg_namespace` OID.
    Schema(u32),
    /// `pg_extension` OID.
    Extension(u32),
    /// `pg_collation` OID.
    Collation(u32),
    /// `pg_type` OID of an enum, domain, range or standalone composite type.
    Type(u32),
    /// `pg_proc` OID: function, procedure, window function or aggregate.
    Function(u32),
    /// `pg_class` OID: table, partition, view, materialized view or sequence.
    Relation(u32),
    /// An operator, operator family or class, cast or text search object
    /// (see [`super::objects`]), by its catalog's OID.
    Object(Kind, u32),
}

/// The chosen objects, in creation order.
#[derive(Debug, Default)]
pub(super) struct Selected {
    /// Every node, dependencies first.
    pub order: Vec<Node>,
    /// The same nodes, for lookups.
    pub nodes: BTreeSet<Node>,
    /// After-data objects (`(classid, objid)` of an index, constraint,
    /// trigger, rule or policy) that need an object which is not created,
    /// with that object.
    pub blocked: HashMap<(u32, u32), Node>,
    /// Column defaults `(table, attnum)` set after the functions they call,
    /// by `alter column … set default`: a dependency cycle (the function's
    /// SQL-standard body reads the table) forced them out of the table.
    pub deferred_defaults: BTreeSet<(u32, i16)>,
    /// Why objects were left out or may fail.
    pub warnings: Vec<String>,
}

impl Selected {
    /// Whether relation `oid` (table, view, sequence…) will be created.
    pub fn has_relation(&self, oid: u32) -> bool {
        self.nodes.contains(&Node::Relation(oid))
    }
}

/// Kind rank, schema name, object name: the tie-break order.
type Key<'a> = (u8, &'a str, &'a str, Node);

impl Catalog {
    /// The node an object belongs to: a column default or a check constraint
    /// to its table, a row type to its table, an array type to its element,
    /// a view's rule to the view, an extension member to its extension.
    /// `None` for system objects and for what is created after the data.
    pub(super) fn node_of(&self, classid: u32, objid: u32) -> Option<Node> {
        if let Some(ext) = self.members.get(&(classid, objid)) {
            return Some(Node::Extension(*ext));
        }
        match classid {
            PG_CLASS => {
                let rel = self.relations.get(&objid)?;
                match rel.kind {
                    'c' => self.node_of(PG_TYPE, rel.reltype),
                    'r' | 'p' | 'v' | 'm' | 'S' | 'f' => Some(Node::Relation(objid)),
                    _ => None,
                }
            }
            PG_TYPE => {
                let t = self.types.get(&objid)?;
                if t.array_of != 0 {
                    return self.node_of(PG_TYPE, t.array_of);
                }
                if t.typtype == 'm' {
                    let range = self
                        .ranges
                        .iter()
                        .find(|(_, r)| r.multirange == Some(objid))
                        .map(|(oid, _)| *oid)?;
                    return self.node_of(PG_TYPE, range);
                }
                if t.typrelid != 0 {
                    let rel = self.relations.get(&t.typrelid)?;
                    if rel.kind != 'c' {
                        return self.node_of(PG_CLASS, t.typrelid);
                    }
                }
                Some(Node::Type(objid))
            }
            PG_PROC => {
                let f = self.functions.get(&objid)?;
                match f.made_by_type {
                    Some(t) => self.node_of(PG_TYPE, t),
                    None => Some(Node::Function(objid)),
                }
            }
            PG_ATTRDEF => self.node_of(PG_CLASS, self.attrdefs.get(&objid)?.0),
            PG_CONSTRAINT => {
                let c = self.constraints.get(&objid)?;
                if c.domain != 0 {
                    self.node_of(PG_TYPE, c.domain)
                } else if c.kind == 'c' {
                    self.node_of(PG_CLASS, c.relation)
                } else {
                    None
                }
            }
            PG_REWRITE => {
                let r = self.rules.get(&objid)?;
                if r.definition.is_none() {
                    self.node_of(PG_CLASS, r.relation)
                } else {
                    None
                }
            }
            PG_COLLATION => self
                .collations
                .contains_key(&objid)
                .then_some(Node::Collation(objid)),
            PG_NAMESPACE => self
                .namespaces
                .contains_key(&objid)
                .then_some(Node::Schema(objid)),
            PG_EXTENSION => self
                .extensions
                .contains_key(&objid)
                .then_some(Node::Extension(objid)),
            PG_AMOP | PG_AMPROC => {
                let (classid, objid) = self.objects.member_owner(classid, objid)?;
                self.node_of(classid, objid)
            }
            _ => self
                .objects
                .kind_of(classid, objid)
                .map(|kind| Node::Object(kind, objid)),
        }
    }

    /// The table an after-data object (index, non-check constraint, trigger,
    /// rule, policy) belongs to.
    fn post_owner(&self, classid: u32, objid: u32) -> Option<u32> {
        match classid {
            PG_CLASS => self.indexes.get(&objid).map(|i| i.relation),
            PG_CONSTRAINT => self
                .constraints
                .get(&objid)
                .filter(|c| c.kind != 'c' && c.relation != 0)
                .map(|c| c.relation),
            PG_TRIGGER => self.triggers.get(&objid).map(|t| t.relation),
            PG_REWRITE => self
                .rules
                .get(&objid)
                .filter(|r| r.definition.is_some())
                .map(|r| r.relation),
            PG_POLICY => self.policies.get(&objid).map(|p| p.relation),
            _ => None,
        }
    }

    /// Schema OID and name of a node, for ordering and messages.
    pub(super) fn node_name(&self, node: Node) -> (u32, &str) {
        let missing = (0, "?");
        match node {
            Node::Schema(oid) => self
                .namespaces
                .get(&oid)
                .map_or(missing, |n| (oid, n.name.as_str())),
            Node::Extension(oid) => self
                .extensions
                .get(&oid)
                .map_or(missing, |e| (e.schema, e.name.as_str())),
            Node::Collation(oid) => self
                .collations
                .get(&oid)
                .map_or(missing, |c| (c.schema, c.name.as_str())),
            Node::Type(oid) => self
                .types
                .get(&oid)
                .map_or(missing, |t| (t.schema, t.name.as_str())),
            Node::Function(oid) => self
                .functions
                .get(&oid)
                .map_or(missing, |f| (f.schema, f.name.as_str())),
            Node::Relation(oid) => self
                .relations
                .get(&oid)
                .map_or(missing, |r| (r.schema, r.name.as_str())),
            Node::Object(kind, oid) => self.objects.name(kind, oid).unwrap_or(missing),
        }
    }

    /// `schema.name` of a node, unquoted, for messages.
    pub(super) fn display(&self, node: Node) -> String {
        let (schema, name) = self.node_name(node);
        match node {
            Node::Schema(_) => name.to_owned(),
            Node::Function(oid) => format!(
                "{}.{name}({})",
                self.schema_name(schema),
                self.functions
                    .get(&oid)
                    .map_or("", |f| f.identity_args.as_str())
            ),
            Node::Object(kind, oid) => objects::display(self, kind, oid),
            _ => format!("{}.{name}", self.schema_name(schema)),
        }
    }

    /// The name of schema `oid` (`pg_catalog` for system schemas).
    pub(super) fn schema_name(&self, oid: u32) -> &str {
        self.namespaces
            .get(&oid)
            .map_or("pg_catalog", |n| n.name.as_str())
    }

    fn rank(&self, node: Node) -> u8 {
        match node {
            Node::Schema(_) => 0,
            Node::Extension(_) => 1,
            Node::Collation(_) => 2,
            Node::Type(_) => 3,
            Node::Function(oid) => match self.functions.get(&oid).map(|f| f.kind) {
                Some('a') => 6,
                _ => 5,
            },
            Node::Object(kind, _) => kind.rank(),
            Node::Relation(oid) => match self.relations.get(&oid).map(|r| r.kind) {
                Some('S') => 4,
                Some('v') => 16,
                Some('m') => 17,
                _ => 15,
            },
        }
    }

    /// Whether `child` is a partition or inheritance child of `parent`.
    pub(super) fn inherits_from(&self, child: u32, parent: u32) -> bool {
        self.parents
            .get(&child)
            .is_some_and(|ps| ps.contains(&parent))
    }
}

/// Chooses the objects for `selection` and orders them.
pub(super) fn select(cat: &Catalog, selection: &SchemaSelection) -> Selected {
    let mut warnings = Vec::new();
    let ns_by_name: HashMap<&str, u32> = cat
        .namespaces
        .iter()
        .map(|(oid, n)| (n.name.as_str(), *oid))
        .collect();
    let rel_by_name: HashMap<(&str, &str), u32> = cat
        .relations
        .iter()
        .map(|(oid, r)| ((cat.schema_name(r.schema), r.name.as_str()), *oid))
        .collect();
    let lookup = |q: &crate::model::QualifiedName| {
        rel_by_name
            .get(&(q.schema.as_str(), q.name.as_str()))
            .copied()
    };
    let excluded: HashSet<u32> = cat
        .relations
        .iter()
        .filter(|(_, r)| selection.excludes(cat.schema_name(r.schema), &r.name))
        .map(|(oid, _)| *oid)
        .collect();
    let is_member = |class: u32, oid: u32| cat.members.contains_key(&(class, oid));

    let mut set: BTreeSet<Node> = BTreeSet::new();
    for schema in &selection.schemas {
        let Some(&ns) = ns_by_name.get(schema.as_str()) else {
            warnings.push(format!("schema {schema} does not exist on the source"));
            continue;
        };
        set.insert(Node::Schema(ns));
        for (oid, e) in &cat.extensions {
            if e.schema == ns && e.name != "plpgsql" {
                set.insert(Node::Extension(*oid));
            }
        }
        for (oid, c) in &cat.collations {
            if c.schema == ns && !is_member(PG_COLLATION, *oid) {
                set.insert(Node::Collation(*oid));
            }
        }
        for (oid, t) in &cat.types {
            if t.schema != ns || t.array_of != 0 || is_member(PG_TYPE, *oid) {
                continue;
            }
            match t.typtype {
                'e' | 'd' | 'r' => {
                    set.insert(Node::Type(*oid));
                }
                'c' if cat
                    .relations
                    .get(&t.typrelid)
                    .is_some_and(|r| r.kind == 'c') =>
                {
                    set.insert(Node::Type(*oid));
                }
                'b' => warnings.push(format!(
                    "base type {schema}.{} is not created: only types of extensions are supported",
                    t.name
                )),
                _ => {}
            }
        }
        for (oid, f) in &cat.functions {
            if f.schema == ns && f.made_by_type.is_none() && !selection.excludes(schema, &f.name) {
                set.insert(Node::Function(*oid));
            }
        }
        for (oid, r) in &cat.relations {
            if r.schema != ns || excluded.contains(oid) || is_member(PG_CLASS, *oid) {
                continue;
            }
            match r.kind {
                'r' | 'p' | 'v' | 'm' => {
                    set.insert(Node::Relation(*oid));
                }
                'S' => {
                    let seq = cat.sequences.get(oid);
                    let owner_excluded = seq
                        .and_then(|s| s.owner)
                        .is_some_and(|(t, _)| excluded.contains(&t));
                    if seq.is_some_and(|s| !s.identity) && !owner_excluded {
                        set.insert(Node::Relation(*oid));
                    }
                }
                'f' => warnings.push(format!(
                    "foreign table {schema}.{} is not created: foreign tables are not supported",
                    r.name
                )),
                _ => {}
            }
        }
        for (kind, oid) in cat.objects.in_schema(ns) {
            if !is_member(kind.classid(), oid) {
                set.insert(Node::Object(kind, oid));
            }
        }
    }
    for table in &selection.tables {
        match lookup(table) {
            Some(oid) if excluded.contains(&oid) => {}
            Some(oid) if matches!(cat.relations[&oid].kind, 'r' | 'p' | 'v' | 'm') => {
                if is_member(PG_CLASS, oid) {
                    warnings.push(format!(
                        "table {table} belongs to an extension; only the extension is created"
                    ));
                }
                set.insert(
                    cat.node_of(PG_CLASS, oid)
                        .expect("a user relation maps to a node"),
                );
            }
            Some(_) => warnings.push(format!("{table} is not a table or view; not created")),
            None => warnings.push(format!("table {table} does not exist on the source")),
        }
    }

    // Partitions of chosen partitioned tables, all levels down.
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (child, parents) in &cat.parents {
        for parent in parents {
            children.entry(*parent).or_default().push(*child);
        }
    }
    let mut stack: Vec<u32> = set
        .iter()
        .filter_map(|n| match n {
            Node::Relation(oid) => Some(*oid),
            _ => None,
        })
        .collect();
    while let Some(rel) = stack.pop() {
        if cat.relations.get(&rel).is_none_or(|r| r.kind != 'p') {
            continue;
        }
        for child in children.get(&rel).into_iter().flatten() {
            let is_partition = cat.relations.get(child).is_some_and(|r| r.is_partition);
            if is_partition && !excluded.contains(child) && set.insert(Node::Relation(*child)) {
                stack.push(*child);
            }
        }
    }

    // Serial sequences owned by chosen tables (identity ones come with the column).
    for (oid, seq) in &cat.sequences {
        if let Some((table, _)) = seq.owner
            && !seq.identity
            && set.contains(&Node::Relation(table))
            && !is_member(PG_CLASS, *oid)
        {
            set.insert(Node::Relation(*oid));
        }
    }

    // Dependencies between nodes, and from after-data objects to nodes.
    let mut deps: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    let mut post_deps: HashMap<u32, BTreeSet<Node>> = HashMap::new();
    let mut post_refs: Vec<((u32, u32), u32, Node)> = Vec::new();
    // Table → function edges that come from a column default only: a cycle
    // through one of them is broken by setting the default later.
    let mut default_edges: Vec<(Node, Node, (u32, i16))> = Vec::new();
    let mut hard_edges: BTreeSet<(Node, Node)> = BTreeSet::new();
    for d in &cat.depends {
        let Some(to) = cat.node_of(d.refclassid, d.refobjid) else {
            continue;
        };
        match cat.node_of(d.classid, d.objid) {
            Some(from) => {
                if from == to {
                    continue;
                }
                if let (Node::Relation(f), Node::Relation(t)) = (from, to)
                    && (cat.relations.get(&f).is_some_and(|r| r.kind == 'S')
                        || cat.inherits_from(f, t))
                {
                    // A sequence's own dependency is its owner (OWNED BY is
                    // emitted with the table); inheritance is handled apart.
                    continue;
                }
                deps.entry(from).or_default().insert(to);
                let plain_default = |(rel, num): &(u32, i16)| {
                    cat.columns
                        .get(rel)
                        .into_iter()
                        .flatten()
                        .any(|c| c.num == *num && c.generated.is_none())
                };
                match cat.attrdefs.get(&d.objid) {
                    Some(column)
                        if d.classid == PG_ATTRDEF
                            && matches!(to, Node::Function(_))
                            && plain_default(column) =>
                    {
                        default_edges.push((from, to, *column));
                    }
                    _ => {
                        hard_edges.insert((from, to));
                    }
                }
            }
            None => {
                if let Some(rel) = cat.post_owner(d.classid, d.objid) {
                    post_deps.entry(rel).or_default().insert(to);
                    post_refs.push(((d.classid, d.objid), rel, to));
                }
            }
        }
    }

    // Closure: bring what the chosen objects need. Nothing depends on a
    // cast or on an operator's commutator: once the closure is complete,
    // what the chosen objects imply joins (see `objects::implied`), and what
    // that needs is brought in turn.
    let mut work: Vec<Node> = set.iter().copied().collect();
    loop {
        let Some(node) = work.pop() else {
            work.extend(
                objects::implied(cat, &set)
                    .into_iter()
                    .filter(|cast| set.insert(*cast)),
            );
            if work.is_empty() {
                break;
            }
            continue;
        };
        let mut needs: Vec<Node> = deps.get(&node).into_iter().flatten().copied().collect();
        if let Node::Relation(rel) = node {
            needs.extend(post_deps.get(&rel).into_iter().flatten().copied());
        }
        let schema = match node {
            Node::Schema(_) => None,
            _ => Some(cat.node_name(node).0),
        };
        if let Some(ns) = schema.filter(|ns| cat.namespaces.contains_key(ns)) {
            needs.push(Node::Schema(ns));
        }
        for need in needs {
            let wanted = match need {
                Node::Relation(oid) => cat
                    .sequences
                    .get(&oid)
                    .is_some_and(|s| !s.identity && !is_member(PG_CLASS, oid)),
                Node::Extension(oid) => cat
                    .extensions
                    .get(&oid)
                    .is_some_and(|e| e.name != "plpgsql"),
                _ => true,
            };
            if wanted && set.insert(need) {
                work.push(need);
            }
        }
    }

    // Leave out what needs a table or view that is not chosen, transitively.
    loop {
        let mut dropped = Vec::new();
        for node in &set {
            // Only tables and views are refused by the closure; whatever
            // else is missing (plpgsql, an identity sequence) exists anyway.
            let missing = deps.get(node).into_iter().flatten().find(|need| {
                !set.contains(need)
                    && matches!(need, Node::Relation(oid)
                        if cat.relations.get(oid).is_some_and(|r| r.kind != 'S'))
            });
            if let Some(missing) = missing {
                dropped.push((*node, *missing));
            }
        }
        if dropped.is_empty() {
            break;
        }
        for (node, missing) in dropped {
            set.remove(&node);
            warnings.push(format!(
                "{} is not created: it depends on {}, which is not selected",
                cat.display(node),
                cat.display(missing)
            ));
        }
    }

    // After-data objects of chosen tables that need a missing table, view,
    // type or function (a rule writing to an unselected table…).
    let mut blocked = HashMap::new();
    for (object, rel, to) in post_refs {
        let missing = match to {
            Node::Relation(oid) => {
                oid != rel && cat.relations.get(&oid).is_some_and(|r| r.kind != 'S')
            }
            Node::Type(_) | Node::Function(_) | Node::Collation(_) | Node::Object(..) => true,
            Node::Schema(_) | Node::Extension(_) => false,
        };
        if missing && set.contains(&Node::Relation(rel)) && !set.contains(&to) {
            blocked.insert(object, to);
        }
    }

    let mut edges: Vec<(Node, Node)> = Vec::new();
    for node in &set {
        for need in deps.get(node).into_iter().flatten() {
            edges.push((*node, *need));
        }
        match *node {
            Node::Relation(rel) => {
                for parent in cat.parents.get(&rel).into_iter().flatten() {
                    edges.push((*node, Node::Relation(*parent)));
                }
                edges.push((*node, Node::Schema(cat.node_name(*node).0)));
            }
            Node::Extension(oid) => {
                edges.push((*node, Node::Schema(cat.extensions[&oid].schema)));
            }
            Node::Schema(_) => {}
            _ => edges.push((*node, Node::Schema(cat.node_name(*node).0))),
        }
    }
    let key = |n: &Node| -> Key<'_> {
        let (schema, name) = cat.node_name(*n);
        (cat.rank(*n), cat.schema_name(schema), name, *n)
    };
    let mut sorted = toposort(&set, &edges, key);
    let mut deferred_defaults = BTreeSet::new();
    if !sorted.cycle_breaks.is_empty() && !default_edges.is_empty() {
        let soft: BTreeSet<(Node, Node)> = default_edges
            .iter()
            .map(|(from, to, _)| (*from, *to))
            .filter(|pair| !hard_edges.contains(pair))
            .collect();
        let hard: Vec<(Node, Node)> = edges
            .iter()
            .copied()
            .filter(|pair| !soft.contains(pair))
            .collect();
        sorted = toposort(&set, &hard, key);
        let position: HashMap<Node, usize> = sorted
            .order
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i))
            .collect();
        for (table, function, column) in &default_edges {
            if let (Some(t), Some(f)) = (position.get(table), position.get(function))
                && t < f
            {
                deferred_defaults.insert(*column);
            }
        }
    }
    for node in &sorted.cycle_breaks {
        warnings.push(format!(
            "{} is part of a dependency cycle; it is created before some of what it needs",
            cat.display(*node)
        ));
    }
    Selected {
        order: sorted.order,
        nodes: set,
        blocked,
        deferred_defaults,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QualifiedName;
    use crate::pg::schema::catalog::{
        Column, Depend, Extension, Function, Namespace, Relation, Rule, Sequence, TypeInfo,
    };

    const PUBLIC: u32 = 2200;
    const OTHER: u32 = 16400;
    const T: u32 = 16500;
    const T_ROW: u32 = 16501;
    const T_ARRAY: u32 = 16502;
    const DOMAIN: u32 = 16510;
    const F: u32 = 16520;
    const SEQ: u32 = 16530;
    const ATTRDEF: u32 = 16540;
    const V: u32 = 16550;
    const V_RULE: u32 = 16551;
    const U: u32 = 16560;
    const EXT: u32 = 16600;
    const CITEXT: u32 = 16610;

    fn relation(schema: u32, name: &str, kind: char, reltype: u32) -> Relation {
        Relation {
            schema,
            name: name.into(),
            kind,
            persistence: 'p',
            reltype,
            is_partition: false,
            replica_identity: 'd',
            options: Vec::new(),
            row_security: false,
            force_row_security: false,
            populated: true,
            access_method: None,
            partition_key: None,
            partition_bound: None,
            view_definition: None,
            size: 0,
            has_key: false,
            comment: None,
        }
    }

    fn type_info(name: &str, typtype: char, typrelid: u32, array_of: u32) -> TypeInfo {
        TypeInfo {
            schema: PUBLIC,
            name: name.into(),
            typtype,
            typrelid,
            array_of,
            domain_base: None,
            not_null: false,
            default: None,
            collation: None,
            comment: None,
        }
    }

    fn dep(classid: u32, objid: u32, refclassid: u32, refobjid: u32, deptype: char) -> Depend {
        Depend {
            classid,
            objid,
            refclassid,
            refobjid,
            deptype,
        }
    }

    /// public.t (a column of domain public.d, a citext column and a serial
    /// default on public.s), public.f() returning setof public.t, and
    /// public.v reading other.u.
    fn catalog() -> Catalog {
        let mut cat = Catalog::default();
        for (oid, name) in [(PUBLIC, "public"), (OTHER, "other")] {
            cat.namespaces.insert(
                oid,
                Namespace {
                    name: name.into(),
                    comment: None,
                },
            );
        }
        cat.extensions.insert(
            EXT,
            Extension {
                name: "citext".into(),
                schema: PUBLIC,
            },
        );
        cat.members.insert((PG_TYPE, CITEXT), EXT);
        cat.relations.insert(T, relation(PUBLIC, "t", 'r', T_ROW));
        cat.relations.insert(SEQ, relation(PUBLIC, "s", 'S', 0));
        cat.relations.insert(V, relation(PUBLIC, "v", 'v', 0));
        cat.relations.insert(U, relation(OTHER, "u", 'r', 0));
        cat.columns.insert(
            T,
            vec![Column {
                num: 1,
                name: "id".into(),
                type_name: "integer".into(),
                not_null: true,
                default: Some("nextval('public.s'::regclass)".into()),
                identity: None,
                generated: None,
                collation: None,
                is_local: true,
                comment: None,
            }],
        );
        cat.sequences.insert(
            SEQ,
            Sequence {
                type_name: "integer".into(),
                start: 1,
                increment: 1,
                max: i64::from(i32::MAX),
                min: 1,
                cache: 1,
                cycle: false,
                owner: Some((T, 1)),
                identity: false,
            },
        );
        cat.types.insert(T_ROW, type_info("t", 'c', T, 0));
        cat.types.insert(T_ARRAY, type_info("_t", 'b', 0, T_ROW));
        cat.types.insert(DOMAIN, type_info("d", 'd', 0, 0));
        cat.types.insert(CITEXT, type_info("citext", 'b', 0, 0));
        cat.functions.insert(
            F,
            Function {
                schema: PUBLIC,
                name: "f".into(),
                kind: 'f',
                identity_args: String::new(),
                args: String::new(),
                definition: Some("create function …".into()),
                parallel: 'u',
                made_by_type: None,
                comment: None,
            },
        );
        cat.attrdefs.insert(ATTRDEF, (T, 1));
        cat.rules.insert(
            V_RULE,
            Rule {
                relation: V,
                name: "_RETURN".into(),
                enabled: 'O',
                definition: None,
                comment: None,
            },
        );
        cat.depends = vec![
            dep(PG_CLASS, T, PG_TYPE, DOMAIN, 'n'),
            dep(PG_CLASS, T, PG_TYPE, CITEXT, 'n'),
            dep(PG_ATTRDEF, ATTRDEF, PG_CLASS, SEQ, 'n'),
            dep(PG_CLASS, SEQ, PG_CLASS, T, 'a'),
            dep(PG_PROC, F, PG_TYPE, T_ROW, 'n'),
            dep(PG_REWRITE, V_RULE, PG_CLASS, U, 'n'),
        ];
        cat
    }

    fn names(cat: &Catalog, selected: &Selected) -> Vec<String> {
        selected.order.iter().map(|n| cat.display(*n)).collect()
    }

    #[test]
    fn rows_arrays_and_members_map_to_what_creates_them() {
        let cat = catalog();
        assert_eq!(cat.node_of(PG_TYPE, T_ARRAY), Some(Node::Relation(T)));
        assert_eq!(cat.node_of(PG_TYPE, T_ROW), Some(Node::Relation(T)));
        assert_eq!(cat.node_of(PG_TYPE, CITEXT), Some(Node::Extension(EXT)));
        assert_eq!(cat.node_of(PG_ATTRDEF, ATTRDEF), Some(Node::Relation(T)));
        assert_eq!(cat.node_of(PG_REWRITE, V_RULE), Some(Node::Relation(V)));
        assert_eq!(
            cat.node_of(PG_PROC, 1),
            None,
            "system objects map to nothing"
        );
    }

    #[test]
    fn a_schema_comes_in_dependency_order_without_what_needs_other_schemas() {
        let cat = catalog();
        let selection = SchemaSelection {
            schemas: vec!["public".into()],
            ..SchemaSelection::default()
        };
        let selected = select(&cat, &selection);
        // The serial sequence before its table (no cycle through OWNED BY),
        // the function returning the table's rows after the table.
        assert_eq!(
            names(&cat, &selected),
            [
                "public",
                "public.citext",
                "public.d",
                "public.s",
                "public.t",
                "public.f()"
            ]
        );
        assert_eq!(
            selected.warnings,
            ["public.v is not created: it depends on other.u, which is not selected"]
        );
    }

    #[test]
    fn a_table_brings_its_types_sequences_and_extensions_only() {
        let cat = catalog();
        let selection = SchemaSelection {
            tables: vec![QualifiedName::new("public", "t")],
            ..SchemaSelection::default()
        };
        let selected = select(&cat, &selection);
        assert_eq!(
            names(&cat, &selected),
            [
                "public",
                "public.citext",
                "public.d",
                "public.s",
                "public.t"
            ]
        );
        assert!(selected.warnings.is_empty(), "{:?}", selected.warnings);
    }

    #[test]
    fn excluded_tables_take_their_sequences_with_them() {
        let cat = catalog();
        let selection = SchemaSelection {
            schemas: vec!["public".into()],
            exclude: vec![QualifiedName::new("public", "*")],
            ..SchemaSelection::default()
        };
        let selected = select(&cat, &selection);
        let names = names(&cat, &selected);
        assert!(!names.contains(&"public.t".to_owned()), "{names:?}");
        assert!(!names.contains(&"public.s".to_owned()), "{names:?}");
        // f returns t's rows: left out with a warning, like v.
        assert!(!names.contains(&"public.f()".to_owned()), "{names:?}");
    }
}
