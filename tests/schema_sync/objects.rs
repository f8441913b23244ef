//! Operators, operator families and classes, casts and text search objects
//! (testdata/schema/operators.sql) through the schema generation: identical
//! schema fingerprints, in dependency order, and the indexes, constraints,
//! generated columns and views using them work on the destination.

use pgsync::model::QualifiedName;
use pgsync::pg::schema::SchemaSelection;
use tokio_postgres::Client;

use super::{assert_identical, assert_same, fingerprint, load, row_counts, sync_schema};
use crate::support::cli::{Workspace, expect_exit};
use crate::support::pg::{Pair, column, connect};

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/schema/operators.sql")
}

fn both_schemas() -> SchemaSelection {
    SchemaSelection {
        schemas: vec!["ops".into(), "Text Search".into()],
        ..SchemaSelection::default()
    }
}

/// Every row of `ops.shape` (the generated `doc` column included, computed
/// by the destination's own text search configuration) and of the view
/// over it, as text, in key order.
async fn rows(client: &Client) -> Vec<Option<String>> {
    let mut out = column(
        client,
        "set extra_float_digits = 3;
         select string_agg(t::text, E'\\n' order by t.id) from ops.shape t",
    )
    .await;
    out.extend(
        column(
            client,
            "select string_agg(v::text, E'\\n' order by v.id) from ops.shape_view v",
        )
        .await,
    );
    out
}

/// Whether the plan of `query`, with sequential scans disabled, reads
/// `index` (an index scan, an index-only scan or a bitmap index scan).
async fn uses_index(client: &Client, query: &str, index: &str) -> (bool, String) {
    let plan: Vec<String> = column(
        client,
        &format!("set enable_seqscan = off; explain (costs off) {query}"),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    let uses = plan.iter().any(|line| {
        let line = line.trim_start().trim_start_matches("->  ");
        line.starts_with(&format!("Index Scan using {index} on "))
            || line.starts_with(&format!("Index Only Scan using {index} on "))
            || line == format!("Bitmap Index Scan on {index}")
    });
    (uses, plan.join("\n"))
}

/// The fingerprint lines starting with `prefix`.
fn lines<'a>(fingerprint: &'a [String], prefix: &str) -> Vec<&'a str> {
    fingerprint
        .iter()
        .filter(|l| l.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_casts_and_text_search_are_recreated_identically() {
    let pair = Pair::start();
    load(&pair, "app", &fixture());
    let script = assert_identical(&pair, "app", &both_schemas()).await;

    let kinds: std::collections::BTreeSet<&str> = script.pre_data.iter().map(|s| s.kind).collect();
    for kind in [
        "operator",
        "operator family",
        "operator family members",
        "operator class",
        "cast",
        "text search parser",
        "text search template",
        "text search dictionary",
        "text search configuration",
        "text search mapping",
    ] {
        assert!(kinds.contains(kind), "no {kind:?} statement in {kinds:?}");
    }
    let position = |kind: &str, name: &str| {
        script
            .pre_data
            .iter()
            .position(|s| s.kind == kind && s.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in pre_data"))
    };
    let lt = position("operator", "ops.<(ops.complex, ops.complex)");
    let family = position("operator family", "ops.complex_abs_family");
    let class = position("operator class", "ops.complex_abs_ops");
    let cast = position("cast", "cast (double precision as ops.complex)");
    let config = position("text search configuration", "Text Search.myconf");
    assert!(position("type", "ops.complex") < lt);
    assert!(position("function", "ops.complex_lt(a ops.complex, b ops.complex)") < lt);
    assert!(lt < class && family < class);
    assert!(position("function", "ops.complex_of(double precision)") < cast);
    // No pg_depend row leads from the view to the cast its text names.
    assert!(cast < position("view", "ops.shape_view"));
    assert!(position("text search dictionary", "Text Search.Stop Simple") < config);
    assert!(config < position("table", "ops.shape"));
    assert!(
        position("text search parser", "Text Search.words")
            < position("text search configuration", "Text Search.plain")
    );
    // The cross-type member and the GiST operators are the family's own.
    let members = &script.pre_data[position("operator family members", "ops.complex_abs_family")];
    assert_eq!(
        members.sql,
        "alter operator family \"ops\".\"complex_abs_family\" using \"btree\" add \
         operator 1 \"ops\".< (ops.complex, double precision), \
         function 1 (ops.complex, double precision) ops.complex_float_cmp(ops.complex,double precision)"
    );
    assert_eq!(
        script.pre_data[class].sql,
        "create operator class \"ops\".\"complex_abs_ops\" default for type ops.complex \
         using \"btree\" family \"ops\".\"complex_abs_family\" as \
         operator 1 \"ops\".< (ops.complex, ops.complex), \
         operator 2 \"ops\".<= (ops.complex, ops.complex), \
         operator 3 \"ops\".= (ops.complex, ops.complex), \
         operator 4 \"ops\".>= (ops.complex, ops.complex), \
         operator 5 \"ops\".> (ops.complex, ops.complex), \
         function 1 (ops.complex, ops.complex) ops.complex_cmp(ops.complex,ops.complex)"
    );

    // The fingerprint sees these kinds, with their details.
    let dst = connect(&pair.destination, "app").await;
    let print = fingerprint(&dst).await;
    assert_eq!(
        lines(&print, "operator ops.=("),
        ["operator ops.=(ops.complex,ops.complex) result=boolean \
          function=ops.complex_eq(ops.complex,ops.complex) \
          commutator=ops.=(ops.complex,ops.complex) negator=ops.<>(ops.complex,ops.complex) \
          restrict=eqsel(internal,oid,internal,integer) \
          join=eqjoinsel(internal,oid,internal,smallint,internal) hashes=t merges=t \
          comment=same modulus"]
    );
    assert_eq!(lines(&print, "operator ops.").len(), 9, "{print:#?}");
    assert_eq!(lines(&print, "operator family ").len(), 3, "{print:#?}");
    assert_eq!(lines(&print, "operator class ").len(), 3, "{print:#?}");
    assert_eq!(
        lines(&print, "operator family ops.box_lite_ops using gist"),
        [
            "operator family ops.box_lite_ops using gist comment= members=\
          function 1 (box,box) gist_box_consistent(internal,box,smallint,oid,internal); \
          function 2 (box,box) gist_box_union(internal,internal); \
          function 5 (box,box) gist_box_penalty(internal,internal,internal); \
          function 6 (box,box) gist_box_picksplit(internal,internal); \
          function 7 (box,box) gist_box_same(box,box,internal); \
          function 8 (box,box) gist_box_distance(internal,box,smallint,oid,internal); \
          operator 15 (box,point) <->(box,point) purpose=o sort=pg_catalog.float_ops; \
          operator 3 (box,box) &&(box,box) purpose=s sort=; \
          operator 7 (box,box) @>(box,box) purpose=s sort=; \
          operator 8 (box,box) <@(box,box) purpose=s sort="
        ]
    );
    assert_eq!(
        lines(&print, "cast "),
        [
            "cast (double precision as ops.complex) function=ops.complex_of(double precision) \
             context=a method=f comment=a real number",
            "cast (ops.citext as bytea) function=- context=e method=b comment=",
            "cast (ops.complex as text) function=- context=e method=i comment=",
        ]
    );
    // Copied from english: asciiword and word remapped, email and the URL
    // token types dropped, the rest as english maps them.
    assert_eq!(
        lines(&print, "text search configuration \"Text Search\".myconf "),
        [
            "text search configuration \"Text Search\".myconf parser=pg_catalog.\"default\" \
          comment=english, less mappings=\
          asciiword:\"Text Search\".\"Stop Simple\",\"Text Search\".english_stem2 \
          word:\"Text Search\".\"Stop Simple\",\"Text Search\".english_stem2 \
          numword:pg_catalog.simple host:pg_catalog.simple sfloat:pg_catalog.simple \
          version:pg_catalog.simple hword_numpart:pg_catalog.simple \
          hword_part:pg_catalog.english_stem hword_asciipart:pg_catalog.english_stem \
          numhword:pg_catalog.simple asciihword:pg_catalog.english_stem \
          hword:pg_catalog.english_stem file:pg_catalog.simple float:pg_catalog.simple \
          int:pg_catalog.simple uint:pg_catalog.simple"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_brings_the_operators_classes_casts_and_configurations_it_uses() {
    let pair = Pair::start();
    if pair.source.major_version().is_some_and(|v| v < 14) {
        // `load` gives the support functions string bodies there, which
        // record nothing of the functions they call.
        eprintln!("SKIPPED: needs SQL-standard function bodies (a 14+ source)");
        return;
    }
    load(&pair, "app", &fixture());
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let selection = SchemaSelection {
        tables: vec![QualifiedName::new("ops", "shape")],
        ..SchemaSelection::default()
    };
    let script = sync_schema(&src, &dst, &selection).await;
    assert!(script.warnings.is_empty(), "{:#?}", script.warnings);
    let source: std::collections::BTreeSet<String> = fingerprint(&src).await.into_iter().collect();
    let created = fingerprint(&dst).await;
    let different: Vec<&String> = created.iter().filter(|l| !source.contains(*l)).collect();
    assert!(
        different.is_empty(),
        "differs from the source: {different:#?}"
    );
    for needed in [
        // the indexes' and the exclusion constraint's classes, with what
        // they hold
        "operator class ops.complex_abs_ops ",
        "operator class ops.complex_hash_ops ",
        "operator class ops.box_lite_ops ",
        "operator family ops.complex_abs_family ",
        "operator ops.<(ops.complex,ops.complex) ",
        "operator ops.<(ops.complex,double precision) ",
        // the generated column's and the index's configurations
        "text search configuration \"Text Search\".myconf ",
        "text search configuration \"Text Search\".plain ",
        "text search parser \"Text Search\".words ",
        "text search dictionary \"Text Search\".\"Stop Simple\" ",
        "text search template \"Text Search\".simple_tmpl ",
        // the casts of the column types
        "cast (double precision as ops.complex) ",
        "cast (ops.complex as text) ",
        "cast (ops.citext as bytea) ",
    ] {
        assert!(
            created.iter().any(|l| l.starts_with(needed)),
            "{needed:?} missing from {created:#?}"
        );
    }
    // What only the view uses stays behind.
    for absent in [
        "operator ops.+(",
        "operator ops.@@(",
        "relation ops.shape_view ",
    ] {
        assert!(
            !created.iter().any(|l| l.starts_with(absent)),
            "{absent:?} was created"
        );
    }
    assert_eq!(
        row_counts(&dst, &script).await,
        row_counts(&src, &script).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_recreates_operator_classes_and_text_search_used_by_indexes() {
    let pair = Pair::start();
    load(&pair, "app", &fixture());
    // Objects in a schema that exists on the destination already: only
    // the record of what was created lets `destroy --drop-destination`
    // find them.
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create text search dictionary public.pubdict (template = pg_catalog.simple, stopwords = english);
                 create text search configuration public.pubconf (copy = pg_catalog.simple);
                 alter text search configuration public.pubconf alter mapping for word with public.pubdict;
                 create function public.text_of(ops.complex) returns text language sql as 'select ($1).re::text';
                 create cast (ops.complex as varchar) with function public.text_of(ops.complex);",
            ],
        )
        .expect("public objects");
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let ws = Workspace::new(
        &pair.source,
        &pair.destination,
        "ops",
        "  sync_types  = [\"schema\", \"full\"]\n  schema \"ops\" {}\n  schema \"Text Search\" {}\n  schema \"public\" {}",
    );
    expect_exit(&ws.run(&["apply", "--auto-approve"]), 0);

    let strip = |lines: Vec<String>| -> Vec<String> {
        lines.into_iter().filter(|l| !l.contains("dts_")).collect()
    };
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    let source_rows = rows(&src).await;
    assert_eq!(source_rows.len(), 2);
    assert!(
        source_rows[0]
            .as_deref()
            .is_some_and(|r| r.contains("'fox':4") && r.contains("'lazi':8")),
        "the generated tsvector column is stemmed by myconf: {source_rows:?}"
    );
    assert_eq!(rows(&dst).await, source_rows);

    // Every index is there, valid, and chosen for what its class serves.
    assert_eq!(
        column(
            &dst,
            "select string_agg(c.relname || ' ' || i.indisvalid || ' ' || i.indisready, ', ' order by c.relname)
               from pg_index i join pg_class c on c.oid = i.indexrelid
              where i.indrelid = 'ops.shape'::regclass"
        )
        .await,
        [Some(
            "shape_area true true, shape_body true true, shape_pkey true true, \
             shape_z true true, shape_z_excl true true"
                .to_owned()
        )]
    );
    for (query, index) in [
        (
            "select id from ops.shape where z operator(ops.<) row(3, 4)::ops.complex",
            "shape_z",
        ),
        ("select id from ops.shape order by z limit 5", "shape_z"),
        (
            "select id from ops.shape where area && box(point(1, 1), point(2, 2))",
            "shape_area",
        ),
        (
            "select id from ops.shape order by area <-> point(5, 5) limit 3",
            "shape_area",
        ),
        (
            "select id from ops.shape where to_tsvector('\"Text Search\".plain', body) @@ 'foxes'",
            "shape_body",
        ),
    ] {
        let (uses, plan) = uses_index(&dst, query, index).await;
        assert!(uses, "{query} does not use {index}:\n{plan}");
    }
    // The indexes answer like the source's.
    for query in [
        "select string_agg(id::text, ',' order by id) from ops.shape where z operator(ops.<) row(3, 4)::ops.complex",
        "select string_agg(id::text, ',') from (select id from ops.shape order by area <-> point(5, 5), id limit 3) s",
        "select count(*) from ops.shape where to_tsvector('\"Text Search\".plain', body) @@ 'foxes'",
    ] {
        let on_destination = column(&dst, &format!("set enable_seqscan = off; {query}")).await;
        assert_eq!(on_destination, column(&src, query).await, "{query}");
    }
    // The exclusion constraint (hash class, custom operator) rejects a row
    // of an existing modulus.
    let err = dst
        .batch_execute(
            "insert into ops.shape (id, z, body) values (1000, row(0, 7)::ops.complex, 'x')",
        )
        .await
        .expect_err("(0,7) has the modulus of row 7, (7,0)");
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.constraint() == Some("shape_z_excl")),
        "{err:?}"
    );

    // Dropping what the task created leaves none of these kinds behind (the
    // ones in public too), and the same configuration applies again.
    expect_exit(
        &ws.run(&["destroy", "--auto-approve", "--drop-destination"]),
        0,
    );
    let left: Vec<String> = fingerprint(&dst)
        .await
        .into_iter()
        .filter(|l| {
            ["operator ", "cast ", "text search "]
                .iter()
                .any(|kind| l.starts_with(kind))
        })
        .collect();
    assert!(left.is_empty(), "left on the destination: {left:#?}");
    expect_exit(&ws.run(&["apply", "--auto-approve"]), 0);
    assert_same(
        &strip(fingerprint(&dst).await),
        &strip(fingerprint(&src).await),
    );
    assert_eq!(rows(&dst).await, source_rows);
    expect_exit(&ws.run(&["destroy", "--auto-approve"]), 0);
}
