//! Table-driven tests of the configuration front end. Expected errors are
//! compared as the exact text `ConfigErrors` displays, so messages,
//! positions and hints are all pinned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::{
    ConflictMode, EndpointSpec, ObjectSelection, RetrySpec, Secret, SslMode, SyncTypes, TaskSpec,
    TlsFiles,
};

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/config")
        .join(dir)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn inputs(vars: &[(&str, &str)], env: &[(&str, &str)]) -> Inputs {
    Inputs {
        vars: map(vars),
        env: map(env),
    }
}

fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    list.iter()
        .map(|(name, text)| (PathBuf::from(name), text.to_string()))
        .collect()
}

/// Minimal valid endpoints, to put before a task under test.
const ENDPOINTS: &str = r#"endpoint "src" {
  host     = "a"
  database = "app"
  user     = "u"
}
endpoint "dst" {
  host     = "b"
  database = "app"
  user     = "u"
}
"#;

const ALL: SyncTypes = SyncTypes {
    schema: true,
    full: true,
    incremental: true,
};

#[test]
fn valid_directory_parses_to_the_exact_state() {
    let inputs = inputs(
        &[("dst_password", "dst-secret")],
        &[("SRC_PASSWORD", "src-secret")],
    );
    let state = load_dir(&testdata("valid"), &inputs).unwrap();

    let src = EndpointSpec {
        name: "src".into(),
        host: "10.0.0.5".into(),
        port: 5432,
        database: "app".into(),
        user: "replicator".into(),
        password: Some(Secret::new("src-secret")),
        sslmode: Some(SslMode::Disable),
        tls: TlsFiles::default(),
        passfile: None,
    };
    let dst = EndpointSpec {
        name: "dst".into(),
        host: "10.0.0.9".into(),
        port: 6432,
        database: "reporting_prod".into(),
        user: "writer".into(),
        password: Some(Secret::new("dst-secret")),
        sslmode: None,
        tls: TlsFiles::default(),
        passfile: None,
    };
    let main = TaskSpec {
        name: "app_to_reporting".into(),
        source: "src".into(),
        destination: "dst".into(),
        sync_types: ALL,
        conflicting_tables: ConflictMode::Error,
        objects: vec![
            ObjectSelection::Schema {
                name: "public".into(),
                exclude_tables: vec!["audit_*".into(), "tmp_*".into()],
                rename: None,
                operations: None,
            },
            ObjectSelection::Table {
                schema: "sales".into(),
                name: "orders".into(),
                options: Default::default(),
            },
        ],
        retry: RetrySpec::default(),
        throttle: Default::default(),
        mappings: vec![],
        name_case: Default::default(),
        publication: None,
    };
    let archive = TaskSpec {
        name: "archive-2024".into(),
        source: "src".into(),
        destination: "dst".into(),
        sync_types: ALL,
        conflicting_tables: ConflictMode::Error,
        objects: vec![
            ObjectSelection::Table {
                schema: "archive".into(),
                name: "orders_2024".into(),
                options: Default::default(),
            },
            ObjectSelection::Schema {
                name: "billing".into(),
                exclude_tables: vec![],
                rename: None,
                operations: None,
            },
        ],
        retry: RetrySpec {
            connection_minutes: 60,
            other_minutes: 5,
        },
        throttle: Default::default(),
        mappings: vec![],
        name_case: Default::default(),
        publication: None,
    };
    let want = DesiredState {
        endpoints: [("dst".to_owned(), dst), ("src".to_owned(), src)].into(),
        tasks: [
            ("app_to_reporting".to_owned(), main),
            ("archive-2024".to_owned(), archive),
        ]
        .into(),
    };
    assert_eq!(state, want);
}

#[test]
fn optional_attributes_and_null_take_their_defaults() {
    let text = format!(
        r#"{ENDPOINTS}
variable "pw" {{
  default = null
}}
endpoint "third" {{
  host     = "c"
  port     = 5433.0
  database = "x"
  user     = "u"
  password = var.pw
  sslmode  = null
}}
task "t" {{
  source             = endpoint.src
  destination        = endpoint.third
  sync_types         = ["incremental", "full"]
  conflicting_tables = "ignore"
  table "a.b.c" {{}}
}}
"#
    );
    let state = parse_files(&files(&[("main.hcl", &text)]), &Inputs::default()).unwrap();
    let third = &state.endpoints["third"];
    assert_eq!(
        (third.port, third.password.clone(), third.sslmode),
        (5433, None, None)
    );
    let task = &state.tasks["t"];
    assert_eq!(
        task.sync_types,
        SyncTypes {
            schema: false,
            full: true,
            incremental: true
        }
    );
    assert_eq!(task.conflicting_tables, ConflictMode::Ignore);
    assert_eq!(task.publication, None);
    // The label splits on the first '.': the table name keeps the rest.
    assert_eq!(
        task.objects,
        vec![ObjectSelection::Table {
            schema: "a".into(),
            name: "b.c".into(),
            options: Default::default(),
        }]
    );
}

/// `(case, files, inputs, expected Display of the errors)`.
type ErrorCase = (
    &'static str,
    Vec<(&'static str, String)>,
    Inputs,
    &'static str,
);

fn error_cases() -> Vec<ErrorCase> {
    let task = |body: &str| format!("{ENDPOINTS}task \"t\" {{\n{body}}}\n");
    let plain = Inputs::default;
    vec![
        (
            "unknown attribute with a suggestion",
            vec![(
                "a.hcl",
                "endpoint \"src\" {\n  hots = \"x\"\n  host = \"a\"\n  database = \"d\"\n  user = \"u\"\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:2:3: unknown attribute `hots` in endpoint \"src\"\n  hint: did you mean `host`?",
        ),
        (
            "unknown attribute without a suggestion lists the allowed ones",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dst\n  colour = 1\n  schema \"s\" {}\n"),
            )],
            plain(),
            "a.hcl:14:3: unknown attribute `colour` in task \"t\"\n  hint: task blocks take \
             `source`, `destination`, `sync_types`, `conflicting_tables`, `name_case` and \
             `publication`",
        ),
        (
            "unknown top-level block",
            vec![("a.hcl", "endpont \"src\" {}\n".into())],
            plain(),
            "a.hcl:1:1: unknown block `endpont`\n  hint: did you mean `endpoint`?",
        ),
        (
            "unknown nested block",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dst\n  tabel \"a.b\" {}\n  schema \"s\" {}\n"),
            )],
            plain(),
            "a.hcl:14:3: unknown block `tabel` in task \"t\"\n  hint: did you mean `table`?",
        ),
        (
            "planned but unsupported attribute",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dst\n  alert {}\n  schema \"s\" { rename = \"x\" }\n"),
            )],
            plain(),
            "a.hcl:14:3: `alert` in task \"t\" is not supported yet\n  hint: remove it; \
             docs/config.md lists what this version accepts",
        ),
        (
            "table settings that contradict each other or are malformed",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dst\n  \
                      table \"s.a\" {\n    columns = [\"id\"]\n    column_map = { note = \"n\" }\n  }\n  \
                      table \"s.b\" { rename = \"nodot\" }\n  \
                      table \"s.c\" { operations = [\"inserts\"] }\n  \
                      table \"s.d\" { column_map = { a = \"x\", b = \"x\" } }\n  \
                      mapping {\n    match = \"s.*\"\n    rename = \"t.*.*\"\n  }\n  \
                      schema \"s\" { rename = \"x.y\" }\n  \
                      name_case = \"camel\"\n"),
            )],
            plain(),
            "a.hcl:16:5: `column_map` in table \"s.a\" of task \"t\" renames column \"note\", which \
             `columns` does not select\n  hint: add \"note\" to `columns` or remove it from `column_map`\n\
             a.hcl:18:26: `rename` in table \"s.b\" of task \"t\" must be SCHEMA.NAME, got \"nodot\"\n  \
             hint: write `rename = \"public.nodot\"`\n\
             a.hcl:19:30: `operations` in table \"s.c\" of task \"t\" lists unknown operation \
             \"inserts\"\n  hint: did you mean \"insert\"?\n\
             a.hcl:20:17: `column_map` in table \"s.d\" of task \"t\" maps both \"a\" and \"b\" to \"x\"\n  \
             hint: give each destination column its own name\n\
             a.hcl:23:5: mapping of task \"t\": names have at most one dot: SCHEMA or SCHEMA.TABLE\n  \
             hint: each `*` of `rename` takes the text matched by the `*` of `match` at the same position\n\
             a.hcl:25:25: `rename` in schema \"s\" of task \"t\" must be a schema name without a dot, \
             got \"x.y\"\n  hint: to move single tables, use `rename = \"SCHEMA.NAME\"` in a table block\n\
             a.hcl:26:15: `name_case` in task \"t\" must be \"default\", \"source\", \"destination\", \
             \"lower\" or \"upper\", got \"camel\"",
        ),
        (
            "unknown endpoint reference names the declared ones",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dts\n  schema \"s\" {}\n"),
            )],
            plain(),
            "a.hcl:13:17: unknown endpoint `dts` in `destination` of task \"t\"\n  hint: did you \
             mean `dst`? declared endpoints: `dst` and `src`",
        ),
        (
            "endpoint reference written as a string",
            vec![(
                "a.hcl",
                task("  source = \"src\"\n  destination = endpoint.dst\n  schema \"s\" {}\n"),
            )],
            plain(),
            "a.hcl:12:12: `source` in task \"t\" must be a reference like endpoint.NAME, not a \
             string\n  hint: write `source = endpoint.src` without quotes",
        ),
        (
            "wrong type",
            vec![(
                "a.hcl",
                "endpoint \"src\" {\n  host = \"a\"\n  port = \"abc\"\n  database = \"d\"\n  user = \"u\"\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:3:10: `port` in endpoint \"src\" must be a whole number from 1 to 65535, got \
             \"abc\"\n  hint: write `port = 5432`",
        ),
        (
            "port out of range and a list where a string belongs",
            vec![(
                "a.hcl",
                "endpoint \"src\" {\n  host = [\"a\"]\n  port = 70000\n  database = \"d\"\n  user = \"u\"\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:2:10: `host` in endpoint \"src\" must be a string, got a list\n\
             a.hcl:3:10: `port` in endpoint \"src\" must be a whole number from 1 to 65535, got \
             70000\n  hint: write `port = 5432`",
        ),
        (
            "missing required attributes",
            vec![("a.hcl", "\nendpoint \"src\" {\n  host = \"a\"\n}\n".into())],
            plain(),
            "a.hcl:2:1: endpoint \"src\" is missing required attribute `database`\n  hint: add \
             `database = ...`\n\
             a.hcl:2:1: endpoint \"src\" is missing required attribute `user`\n  hint: add \
             `user = ...`",
        ),
        (
            "several errors in one file, in order",
            vec![(
                "several.hcl",
                include_str!("../../testdata/config/invalid/several.hcl").into(),
            )],
            plain(),
            "several.hcl:1:1: endpoint \"src\" is missing required attribute `host`\n  hint: add \
             `host = ...`\n\
             several.hcl:2:3: unknown attribute `hots` in endpoint \"src\"\n  hint: did you mean \
             `host`?\n\
             several.hcl:3:14: `port` in endpoint \"src\" must be a whole number from 1 to 65535, \
             got \"abc\"\n  hint: write `port = 5432`\n\
             several.hcl:12:14: `sslmode` in endpoint \"dst\" must be \"disable\", \"prefer\", \
             \"require\", \"verify-ca\" or \"verify-full\", got \"verify_full\"\n  hint: did you \
             mean \"verify-full\"?\n\
             several.hcl:17:17: unknown endpoint `dts` in `destination` of task \
             \"app_to_reporting\"\n  hint: did you mean `dst`? declared endpoints: `dst` and \
             `src`\n\
             several.hcl:18:17: `sync_types` in task \"app_to_reporting\" lists unknown sync type \
             \"ful\"\n  hint: did you mean \"full\"?",
        ),
        (
            "duplicate endpoint across two files names both places",
            vec![
                ("a.hcl", ENDPOINTS.into()),
                ("b.hcl", "\n\nendpoint \"dst\" {\n  host = \"c\"\n}\n".into()),
            ],
            plain(),
            "b.hcl:3:10: endpoint \"dst\" is already declared at a.hcl:6:10\n  hint: rename or \
             remove one of them",
        ),
        (
            "syntax error position",
            vec![(
                "syntax.hcl",
                include_str!("../../testdata/config/invalid/syntax.hcl").into(),
            )],
            plain(),
            "syntax.hcl:3:14: syntax error: invalid expression; expected `\"`, `[`, `{`, `-`, \
             `!`, `(`, `_`, `<`, letter or digit",
        ),
        (
            "syntax error in one file does not cascade into unknown references",
            vec![
                ("a.hcl", "endpoint \"src\" {\n".into()),
                ("b.hcl", task("  source = endpoint.src\n  destination = endpoint.elsewhere\n  user = var.who\n  schema \"s\" {}\n")),
            ],
            plain(),
            "a.hcl:1:18: syntax error: invalid block body; expected `}`, newline or identifier\n\
             b.hcl:14:3: unknown attribute `user` in task \"t\"\n  hint: task blocks take \
             `source`, `destination`, `sync_types`, `conflicting_tables`, `name_case` and \
             `publication`",
        ),
        (
            "attribute set twice",
            vec![("a.hcl", "endpoint \"src\" {\n  host = \"a\"\n  host = \"b\"\n}\n".into())],
            plain(),
            "a.hcl:3:3: attribute is set twice in the same block\n  hint: remove one of the two",
        ),
        (
            "missing environment variable",
            vec![(
                "a.hcl",
                "endpoint \"src\" {\n  host = \"a\"\n  database = \"d\"\n  user = env(\"PGUSER\")\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:4:10: environment variable `PGUSER` is not set\n  hint: set PGUSER in the \
             environment that runs pgsync",
        ),
        (
            "env() with a computed name",
            vec![(
                "a.hcl",
                "variable \"n\" { default = \"U1\" }\nendpoint \"src\" {\n  host = \"a\"\n  database = env(var.n)\n  user = \"u\"\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:4:14: cannot evaluate `database` in endpoint \"src\": environment variable \
             `U1` is not set\n  hint: set it in the environment that runs pgsync",
        ),
        (
            "variable without a value, and an undeclared one",
            vec![(
                "a.hcl",
                "variable \"db\" {}\nendpoint \"src\" {\n  host = \"h-${var.hots}\"\n  database = var.db\n  user = \"u\"\n}\nvariable \"host\" { default = \"x\" }\n"
                    .into(),
            )],
            plain(),
            "a.hcl:3:15: undeclared variable `hots`\n  hint: did you mean `var.host`?\n\
             a.hcl:4:14: variable `db` has no value\n  hint: pass --var db=VALUE or set \
             PGSYNC_VAR_db",
        ),
        (
            "variable defaults must be literal",
            vec![(
                "a.hcl",
                "variable \"a\" {\n  default = env(\"HOME\")\n  sensitive = \"yes\"\n}\n".into(),
            )],
            plain(),
            "a.hcl:2:13: the default of variable `a` must be a literal value\n  hint: variable \
             blocks hold literal values only; pass other values with --var NAME=VALUE\n\
             a.hcl:3:15: `sensitive` in variable \"a\" must be true or false, got \"yes\"",
        ),
        (
            "unknown names and functions",
            vec![(
                "a.hcl",
                "endpoint \"src\" {\n  host = localhost\n  database = lower(\"D\")\n  user = endpoint.dst\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:2:10: unknown name `localhost`\n  hint: quote it to make it a string \
             (\"localhost\"), or use var.NAME or env(\"NAME\")\n\
             a.hcl:3:14: unknown function `lower`\n  hint: the only function is env(\"NAME\")\n\
             a.hcl:4:10: `endpoint.NAME` can only be used in `source` and `destination`\n  hint: \
             write the value itself, or use var.NAME or env(\"NAME\")",
        ),
        (
            "task checks: same endpoint twice, bad table label, sync_types",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.src\n  sync_types = []\n  table \"orders\" {}\n"),
            )],
            plain(),
            "a.hcl:13:17: task \"t\" uses endpoint `src` as both source and destination\n  hint: \
             point `destination` at another endpoint\n\
             a.hcl:14:16: `sync_types` in task \"t\" must not be empty\n  hint: list some of \
             \"schema\", \"full\" or \"incremental\", or leave `sync_types` out for all three\n\
             a.hcl:15:9: table label \"orders\" in task \"t\" must be SCHEMA.NAME\n  hint: write \
             `table \"public.orders\" {}`",
        ),
        (
            "task selecting nothing, duplicate sync type, bad conflicting_tables",
            vec![(
                "a.hcl",
                task("  source = endpoint.src\n  destination = endpoint.dst\n  sync_types = [\"full\", \"full\"]\n  conflicting_tables = \"skip\"\n"),
            )],
            plain(),
            "a.hcl:11:1: task \"t\" selects no tables\n  hint: add a `schema \"NAME\" {}` or \
             `table \"SCHEMA.NAME\" {}` block\n\
             a.hcl:14:16: `sync_types` in task \"t\" lists \"full\" twice\n  hint: remove the \
             duplicate\n\
             a.hcl:15:24: `conflicting_tables` in task \"t\" must be \"error\" or \"ignore\", got \
             \"skip\"",
        ),
        (
            "same database behind two endpoint names",
            vec![(
                "a.hcl",
                "endpoint \"a\" {\n  host = \"h\"\n  database = \"d\"\n  user = \"u\"\n}\nendpoint \"b\" {\n  host = \"h\"\n  database = \"d\"\n  user = \"other\"\n}\ntask \"t\" {\n  source = endpoint.a\n  destination = endpoint.b\n  schema \"s\" {}\n}\n"
                    .into(),
            )],
            plain(),
            "a.hcl:13:17: source `a` and destination `b` of task \"t\" are the same database \
             (h:5432/d)\n  hint: check `host`, `port` and `database` of endpoints `a` and `b`",
        ),
        (
            "task names: invalid characters and colliding slots",
            vec![
                ("a.hcl", format!("{ENDPOINTS}task \"App-2\" {{\n  source = endpoint.src\n  destination = endpoint.dst\n  schema \"s\" {{}}\n}}\n")),
                ("b.hcl", "task \"app_2\" {\n  source = endpoint.src\n  destination = endpoint.dst\n  schema \"s\" {}\n}\ntask \"a.b\" {\n  source = endpoint.src\n  destination = endpoint.dst\n  schema \"s\" {}\n}\n".into()),
            ],
            plain(),
            "b.hcl:1:6: task \"app_2\" would share replication slot `dts_sync_app_2` with task \
             \"App-2\" at a.hcl:11:6\n  hint: rename one of them: slot names are lower-cased, \
             characters other than letters and digits become `_`, and they are cut to 63 bytes\n\
             b.hcl:6:6: task name \"a.b\" may contain only letters, digits, `_` and `-`\n  hint: \
             rename the task, for example to \"a_b\"",
        ),
        (
            "labels and attributes in the wrong places",
            vec![(
                "a.hcl",
                "name = \"x\"\nendpoint {\n}\nendpoint \"bad name\" {\n  host { }\n}\n".into(),
            )],
            plain(),
            "a.hcl:1:1: unexpected attribute `name` at the top level\n  hint: attributes go \
             inside `variable`, `endpoint` or `task` blocks\n\
             a.hcl:2:1: endpoint block needs exactly one label, the endpoint name\n  hint: write \
             `endpoint \"NAME\" { ... }`\n\
             a.hcl:4:1: endpoint \"bad name\" is missing required attribute `host`\n  hint: add \
             `host = ...`\n\
             a.hcl:4:1: endpoint \"bad name\" is missing required attribute `database`\n  hint: \
             add `database = ...`\n\
             a.hcl:4:1: endpoint \"bad name\" is missing required attribute `user`\n  hint: add \
             `user = ...`\n\
             a.hcl:4:10: endpoint name \"bad name\" is not a valid identifier\n  hint: use \
             letters, digits, `_` and `-`, starting with a letter or `_`, so that endpoint.NAME \
             can refer to it\n\
             a.hcl:5:3: `host` in endpoint \"bad name\" is an attribute, not a block\n  hint: \
             write `host = ...`",
        ),
    ]
}

#[test]
fn errors_are_reported_with_exact_messages_positions_and_hints() {
    let mut failures = Vec::new();
    for (case, list, inputs, want) in error_cases() {
        let list: Vec<(&str, &str)> = list.iter().map(|(n, t)| (*n, t.as_str())).collect();
        match parse_files(&files(&list), &inputs) {
            Ok(state) => failures.push(format!("{case}: parsed, expected errors: {state:?}")),
            Err(errors) if errors.to_string() != want => {
                failures.push(format!("{case}:\n--- want\n{want}\n--- got\n{errors}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn several_errors_file_has_at_least_three_errors_in_order() {
    let text = std::fs::read_to_string(testdata("invalid/several.hcl")).unwrap();
    let errors = parse_files(&files(&[("several.hcl", &text)]), &Inputs::default()).unwrap_err();
    assert!(errors.len() >= 3);
    let positions: Vec<(usize, usize)> = errors.errors.iter().map(|e| (e.line, e.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
}

#[test]
fn variable_precedence_is_cli_then_pgsync_var_then_default() {
    let text = r#"
variable "host" {
  default = "from-default"
}
endpoint "src" {
  host     = var.host
  database = "d"
  user     = "u"
}
"#;
    let host = |env: &[(&str, &str)], cli: &[(&str, &str)]| {
        let cli: Vec<(String, String)> = cli
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let inputs = Inputs::from_env_and_cli(map(env), &cli);
        let state = parse_files(&files(&[("a.hcl", text)]), &inputs).unwrap();
        state.endpoints["src"].host.clone()
    };
    type Pairs = &'static [(&'static str, &'static str)];
    let cases: [(Pairs, Pairs, &str); 5] = [
        (&[], &[], "from-default"),
        (&[("PGSYNC_VAR_host", "from-env")], &[], "from-env"),
        (
            &[("PGSYNC_VAR_host", "from-env")],
            &[("host", "from-cli")],
            "from-cli",
        ),
        // A later --var beats an earlier one (e.g. one from --var-file).
        (
            &[],
            &[("host", "from-file"), ("host", "from-cli")],
            "from-cli",
        ),
        // The prefix is case-sensitive, like Terraform's TF_VAR_.
        (&[("PGSYNC_VAR_HOST", "other")], &[], "from-default"),
    ];
    for (env, cli, want) in cases {
        assert_eq!(host(env, cli), want, "env {env:?} cli {cli:?}");
    }
}

#[test]
fn env_function_reads_inputs_env_only() {
    let text = r#"
endpoint "src" {
  host     = env("PGSYNC_TEST_HOST")
  database = "db_${env("STAGE")}"
  user     = "u"
}
"#;
    let state = parse_files(
        &files(&[("a.hcl", text)]),
        &inputs(&[], &[("PGSYNC_TEST_HOST", "h1"), ("STAGE", "prod")]),
    )
    .unwrap();
    assert_eq!(state.endpoints["src"].host, "h1");
    assert_eq!(state.endpoints["src"].database, "db_prod");
    // Not from the process environment, even when it is set there.
    let inputs = Inputs::from_env_and_cli(map(&[("PATH", "/bin")]), &[]);
    let text = text.replace("PGSYNC_TEST_HOST", "PATH");
    assert!(parse_files(&files(&[("a.hcl", &text)]), &inputs).is_err());
    assert!(parse_files(&files(&[("a.hcl", &text)]), &Inputs::default()).is_err());
}

#[test]
fn sensitive_values_never_appear_in_errors() {
    let secret = "hunter2-very-secret";
    let cases = [
        // A sensitive variable used where a number belongs.
        r#"variable "pw" { sensitive = true }
endpoint "src" {
  host = "a"
  port = var.pw
  database = "d"
  user = "u"
}"#,
        // An invalid operation on the password.
        r#"endpoint "src" {
  host = "a"
  database = "d"
  user = "u"
  password = env("PW") + 1
}"#,
        // A password of the wrong type, written in the file.
        r#"endpoint "src" {
  host = "a"
  database = "d"
  user = "u"
  password = ["hunter2-very-secret"]
}"#,
        // A sensitive variable in an enumeration.
        r#"variable "pw" { sensitive = true }
endpoint "src" {
  host = "a"
  database = "d"
  user = "u"
  sslmode = var.pw
}"#,
    ];
    for text in cases {
        let inputs = inputs(&[("pw", secret)], &[("PW", secret)]);
        let errors = parse_files(&files(&[("a.hcl", text)]), &inputs).unwrap_err();
        let shown = format!("{errors} {errors:?} {inputs:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(errors.len(), 1, "{errors}");
    }
}

#[test]
fn sensitive_error_messages_say_what_is_wrong_without_the_value() {
    let text = "variable \"pw\" { sensitive = true }\nendpoint \"src\" {\n  host = \"a\"\n  port = var.pw\n  database = \"d\"\n  user = \"u\"\n  password = 5\n}\n";
    let errors = parse_files(
        &files(&[("a.hcl", text)]),
        &inputs(&[("pw", "s3cret")], &[]),
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "a.hcl:4:10: `port` in endpoint \"src\" must be a whole number from 1 to 65535, got a \
         string\n  hint: write `port = 5432`\n\
         a.hcl:7:14: `password` in endpoint \"src\" must be a string, got a number\n  hint: \
         write `password = env(\"NAME\")` or `password = var.NAME`"
    );
}

#[test]
fn load_dir_reads_hcl_files_sorted_and_reports_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_dir(dir.path(), &Inputs::default()).unwrap_err();
    assert_eq!(err.errors[0].message, "no *.hcl files in this directory");
    assert_eq!(err.errors[0].line, 0);

    std::fs::write(dir.path().join("b.hcl"), "endpoint \"x\" {}\n").unwrap();
    std::fs::write(dir.path().join("a.hcl"), "endpoint \"x\" {}\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not hcl").unwrap();
    std::fs::write(dir.path().join(".hidden.hcl"), "garbage {").unwrap();
    let err = load_dir(dir.path(), &Inputs::default()).unwrap_err();
    let first = &err.errors[0];
    assert_eq!(first.file, dir.path().join("a.hcl"));
    let last = err.errors.last().unwrap();
    assert_eq!(last.file, dir.path().join("b.hcl"));
    assert!(
        last.message
            .starts_with("endpoint \"x\" is already declared at "),
        "{last}"
    );
}

#[test]
fn var_files_hold_literal_assignments() {
    let pairs = parse_var_file(
        Path::new("prod.vars.hcl"),
        "host = \"h\"\nport = 5433\ntls = true\n",
    )
    .unwrap();
    assert_eq!(
        pairs,
        vec![
            ("host".to_owned(), "h".to_owned()),
            ("port".to_owned(), "5433".to_owned()),
            ("tls".to_owned(), "true".to_owned()),
        ]
    );
    let err = parse_var_file(
        Path::new("v.hcl"),
        "pw = [\"secret\"]\nx = env(\"HOME\")\nblock {}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "v.hcl:1:6: `pw` must be a string, number or bool, got a list\n\
         v.hcl:2:5: `x` must be a literal value\n  hint: variable files hold literal values only\n\
         v.hcl:3:1: unexpected block `block` in a variable file\n  hint: a variable file holds \
         `NAME = value` lines only"
    );
}

#[test]
fn inputs_debug_hides_values() {
    let inputs = Inputs::from_env_and_cli(
        map(&[("PGSYNC_VAR_pw", "s3cret"), ("HOME", "/root")]),
        &[("user".into(), "alice".into())],
    );
    let shown = format!("{inputs:?}");
    assert_eq!(
        shown,
        "Inputs { vars: [\"pw\", \"user\"], env: (2 variables) }"
    );
}

#[test]
fn tls_attributes_decode_with_paths_relative_to_the_configuration() {
    let text = r#"variable "keypw" { sensitive = true }
endpoint "a" {
  host        = "h"
  database    = "d"
  user        = "u"
  sslmode     = "verify-full"
  sslrootcert = "certs/ca.crt"
  sslcert     = "/etc/pgsync/client.crt"
  sslkey      = "certs/client.key"
  sslpassword = var.keypw
  sslsni      = 0
  passfile    = "pgpass"
}
endpoint "b" {
  host     = "h"
  database = "d"
  user     = "u"
  sslmode  = "verify-ca"
  sslsni   = "true"
}
endpoint "c" {
  host     = "h"
  database = "d"
  user     = "u"
  sslmode  = "require"
}
"#;
    let state = parse_files(
        &[("conf/dir/main.hcl".into(), text.to_owned())],
        &inputs(&[("keypw", "k3y-secret")], &[]),
    )
    .unwrap();
    let a = &state.endpoints["a"];
    assert_eq!(a.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(
        a.tls,
        TlsFiles {
            sslrootcert: Some("conf/dir/certs/ca.crt".into()),
            sslcert: Some("/etc/pgsync/client.crt".into()),
            sslkey: Some("conf/dir/certs/client.key".into()),
            sslpassword: Some(Secret::new("k3y-secret")),
            sslsni: Some(false),
        }
    );
    assert_eq!(a.passfile, Some(PathBuf::from("conf/dir/pgpass")));
    assert!(!format!("{a:?}").contains("k3y-secret"));
    let b = &state.endpoints["b"];
    assert_eq!(
        (b.sslmode, b.tls.sslsni),
        (Some(SslMode::VerifyCa), Some(true))
    );
    assert_eq!(state.endpoints["c"].sslmode, Some(SslMode::Require));
}

#[test]
fn tls_attribute_errors_hide_key_passwords() {
    let text = "endpoint \"a\" {\n  host = \"h\"\n  database = \"d\"\n  user = \"u\"\n  sslpassword = 7\n  sslsni = \"maybe\"\n  sslrootcert = \"\"\n}\n";
    let err = parse_files(&[("t.hcl".into(), text.to_owned())], &Inputs::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.hcl:5:17: `sslpassword` in endpoint \"a\" must be a string, got a number\n  hint: \
         write `sslpassword = env(\"NAME\")` or `sslpassword = var.NAME`\n\
         t.hcl:6:12: `sslsni` in endpoint \"a\" must be true or false, got \"maybe\"\n  hint: \
         write `sslsni = false` to send no server name\n\
         t.hcl:7:17: `sslrootcert` in endpoint \"a\" must not be empty"
    );
}

#[test]
fn retry_windows_follow_the_dts_ranges() {
    let task = |retry: &str| {
        format!(
            "endpoint \"a\" {{\n  host = \"h\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             endpoint \"b\" {{\n  host = \"h2\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             task \"t\" {{\n  source = endpoint.a\n  destination = endpoint.b\n  schema \"public\" {{}}\n  {retry}\n}}\n"
        )
    };
    let err = parse_files(
        &[(
            "t.hcl".into(),
            task("retry {\n    connection_minutes = 5\n    other_minutes = 1\n  }"),
        )],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`connection_minutes` in retry of task \"t\" must be a whole number of minutes from 10 to 1440, got 5"),
        "{err}"
    );
    let err = parse_files(
        &[(
            "t.hcl".into(),
            task("retry {\n    connection_minutes = 30\n    other_minutes = 30\n  }"),
        )],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`other_minutes` (30) in retry of task \"t\" must be less than `connection_minutes` (30)"),
        "{err}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid() -> String {
        std::fs::read_to_string(testdata("valid").join("tasks.hcl")).unwrap()
            + &std::fs::read_to_string(testdata("valid").join("endpoints.hcl")).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary text never panics the front end.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse_files(&[("f.hcl".into(), text)], &Inputs::default());
        }

        /// Mutations of a valid configuration (bytes replaced, cut, or a
        /// snippet of HCL syntax inserted) never panic, and every error has
        /// a position inside the file.
        #[test]
        fn mutated_configurations_never_panic(
            at in 0usize..2000,
            cut in 0usize..40,
            insert in prop::sample::select(vec![
                "{", "}", "\"", "${", "var.", "env(", "endpoint.", "[", "]", "=", "\n", "#", "/*", "<<EOT\n", "\\", "ü", "0x", "-1", "1e309",
            ]),
        ) {
            let text = valid();
            let at = text.char_indices().map(|(i, _)| i).nth(at % text.chars().count()).unwrap_or(0);
            let end = text[at..].char_indices().nth(cut).map_or(text.len(), |(i, _)| at + i);
            let mutated = format!("{}{}{}", &text[..at], insert, &text[end..]);
            let inputs = Inputs::from_env_and_cli(
                [("SRC_PASSWORD".to_owned(), "p".to_owned())].into(),
                &[("dst_password".to_owned(), "q".to_owned())],
            );
            if let Err(errors) = parse_files(&[("f.hcl".into(), mutated.clone())], &inputs) {
                let lines = mutated.lines().count().max(1) + 1;
                for e in &errors.errors {
                    prop_assert!(e.line <= lines, "error line {} beyond the file: {e}", e.line);
                }
            }
        }
    }
}

#[test]
fn throttle_limits_are_optional_positive_numbers() {
    let task = |throttle: &str| {
        format!(
            "endpoint \"a\" {{\n  host = \"h\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             endpoint \"b\" {{\n  host = \"h2\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             task \"t\" {{\n  source = endpoint.a\n  destination = endpoint.b\n  schema \"public\" {{}}\n  {throttle}\n}}\n"
        )
    };
    let state = parse_files(
        &[(
            "t.hcl".into(),
            task("throttle {\n    full_qps = 50\n    full_mbps = 2.5\n    incremental_rps = \"1000\"\n  }"),
        )],
        &Inputs::default(),
    )
    .unwrap();
    let t = state.tasks["t"].throttle;
    assert_eq!(t.full_qps, Some(50.0));
    assert_eq!(t.full_rps, None);
    assert_eq!(t.full_mbps, Some(2.5));
    assert_eq!(t.incremental_rps, Some(1000.0));
    assert_eq!(t.incremental_mbps, None);
    assert_eq!(
        t.describe(),
        "{ full_qps = 50, full_mbps = 2.5, incremental_rps = 1000 }"
    );
    let err = parse_files(
        &[(
            "t.hcl".into(),
            task(
                "throttle {\n    full_rps = 0\n    incremental_mbps = \"fast\"\n    bogus = 1\n  }",
            ),
        )],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`full_rps` in throttle of task \"t\" must be a positive number, got 0"),
        "{err}"
    );
    assert!(
        err.contains(
            "`incremental_mbps` in throttle of task \"t\" must be a positive number, got \"fast\""
        ),
        "{err}"
    );
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn publication_names_an_existing_publication_and_needs_incremental() {
    let task = |body: &str| {
        format!(
            "endpoint \"a\" {{\n  host = \"h\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             endpoint \"b\" {{\n  host = \"h2\"\n  database = \"d\"\n  user = \"u\"\n}}\n\
             task \"t\" {{\n  source = endpoint.a\n  destination = endpoint.b\n  schema \"public\" {{}}\n{body}}}\n"
        )
    };
    let state = parse_files(
        &[("t.hcl".into(), task("  publication = \"App Pub\"\n"))],
        &Inputs::default(),
    )
    .unwrap();
    assert_eq!(state.tasks["t"].publication.as_deref(), Some("App Pub"));

    let err = parse_files(
        &[(
            "t.hcl".into(),
            task("  sync_types = [\"full\"]\n  publication = \"app_pub\"\n"),
        )],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "t.hcl:16:3: `publication` in task \"t\" needs \"incremental\" in `sync_types`: only \
         the stream reads a publication\n  hint: add \"incremental\" to sync_types, or remove \
         `publication`"
    );

    let long = "p".repeat(64);
    let err = parse_files(
        &[(
            "t.hcl".into(),
            task(&format!("  publication = \"{long}\"\n")),
        )],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "t.hcl:15:17: `publication` in task \"t\" must be a PostgreSQL name of at most 63 \
         bytes without NUL characters\n  hint: write the name exactly as `select pubname from \
         pg_publication` shows it"
    );
    let err = parse_files(
        &[("t.hcl".into(), task("  publication = \"\"\n"))],
        &Inputs::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`publication` in task \"t\" must not be empty"),
        "{err}"
    );
}
