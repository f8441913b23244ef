//! The desired state: what the HCL configuration asks for, validated.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Every endpoint and task of a configuration (all `*.hcl` files merged).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredState {
    /// `endpoint "NAME" {}` blocks by name.
    pub endpoints: BTreeMap<String, EndpointSpec>,
    /// `task "NAME" {}` blocks by name.
    pub tasks: BTreeMap<String, TaskSpec>,
}

/// libpq `sslmode` values (PostgreSQL docs §34.19.1 "Protection Provided in
/// Different Modes"). `allow` is not offered: it silently downgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS, without certificate checks.
    Require,
    /// TLS and a certificate signed by `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// The libpq keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// An `endpoint` block: one PostgreSQL database, with libpq's names and
/// meanings.
///
/// Optional connection settings hold what the configuration says, `None`
/// when it says nothing: the `PG*` environment variables and libpq's
/// default files fill them in when a connection is opened (see
/// `pg::connect` and docs/security.md), as libpq does.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    /// The block label.
    pub name: String,
    /// Host name, IP address, or a Unix-socket directory (starts with `/`).
    pub host: String,
    /// TCP port (or the socket file's number); default 5432.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Role name.
    pub user: String,
    /// Password; never serialized or printed. `None`: `PGPASSWORD`, then
    /// the password file.
    pub password: Option<Secret>,
    /// TLS mode. `None`: `PGSSLMODE`, else `prefer`.
    pub sslmode: Option<SslMode>,
    /// Certificates, key and key password.
    pub tls: TlsFiles,
    /// `passfile`: the password file. `None`: `PGPASSFILE`, else
    /// `~/.pgpass`. Relative paths were resolved against the configuration
    /// directory.
    pub passfile: Option<PathBuf>,
}

/// An endpoint's TLS files (libpq's `sslrootcert`, `sslcert`, `sslkey`,
/// `sslpassword`, `sslsni`). Paths from the configuration are already
/// resolved against its directory; `None` means "not set here" (the
/// environment and libpq's `~/.postgresql/` defaults apply).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsFiles {
    /// CA certificates (PEM) that must have signed the server's certificate.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate chain (PEM), for `cert` authentication.
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (PEM, PKCS#8 or traditional;
    /// may be encrypted).
    pub sslkey: Option<PathBuf>,
    /// Password of an encrypted `sslkey`; never serialized or printed.
    pub sslpassword: Option<Secret>,
    /// Whether to send the host name as TLS SNI (libpq's `sslsni`,
    /// default on).
    pub sslsni: Option<bool>,
}

/// Which phases a task runs (`sync_types`, a non-empty subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTypes {
    /// `"schema"`: create the selected objects on the destination.
    pub schema: bool,
    /// `"full"`: copy existing rows under the slot's exported snapshot.
    pub full: bool,
    /// `"incremental"`: stream changes from the slot.
    pub incremental: bool,
}

/// `conflicting_tables`: what to do when a destination table already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictMode {
    /// The precheck fails and names the tables (the default).
    #[default]
    Error,
    /// Proceed: the full copy keeps existing rows with the same key, the
    /// stream overwrites them.
    Ignore,
}

/// One object selection inside a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectSelection {
    /// `schema "NAME" { exclude_tables = [globs] }`: every table of the
    /// schema, including tables created later.
    Schema {
        /// Schema name as in `pg_namespace.nspname`.
        name: String,
        /// Glob patterns (`*` matches any run of characters) on table names.
        exclude_tables: Vec<String>,
        /// `rename`: the destination schema of its objects.
        #[serde(default)]
        rename: Option<String>,
        /// `operations` for its tables (`None`: all).
        #[serde(default)]
        operations: Option<super::Operations>,
    },
    /// `table "SCHEMA.NAME" {}`: one table.
    Table {
        /// Schema name.
        schema: String,
        /// Table name.
        name: String,
        /// `rename`, `columns`, `column_map`, `where`, `operations`.
        #[serde(default)]
        options: super::TableOptions,
    },
}

/// A `task` block: one one-way synchronization from `source` to `destination`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// The block label; the slot is `dts_sync_<name>`.
    pub name: String,
    /// Name of the source endpoint.
    pub source: String,
    /// Name of the destination endpoint.
    pub destination: String,
    /// Phases to run.
    pub sync_types: SyncTypes,
    /// Destination tables that already exist.
    pub conflicting_tables: ConflictMode,
    /// What to synchronize, in file order.
    pub objects: Vec<ObjectSelection>,
    /// How long failures are retried before the task stops.
    pub retry: RetrySpec,
    /// Rate limits of the copy and the stream.
    pub throttle: ThrottleSpec,
    /// `mapping` blocks, in file order (the first match wins).
    pub mappings: Vec<super::Mapping>,
    /// `name_case`.
    pub name_case: super::NameCase,
    /// `publication = "NAME"`: stream from this publication, created and
    /// owned by someone else (the DBA); pgsync never creates, alters or
    /// drops it. `None`: pgsync creates and drops its own `dts_pub_<task>`.
    pub publication: Option<String>,
}

/// The `throttle` block (the DTS speed limits). Every limit is optional and
/// positive; absent means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleSpec {
    /// Queries per second the full copy sends to the source (all COPY
    /// workers of the task together; each chunk's `COPY … TO STDOUT` and
    /// its snapshot/catalog queries count).
    #[serde(default)]
    pub full_qps: Option<f64>,
    /// Rows per second the full copy moves (all workers together).
    #[serde(default)]
    pub full_rps: Option<f64>,
    /// MB per second (10^6 bytes of COPY data) the full copy moves.
    #[serde(default)]
    pub full_mbps: Option<f64>,
    /// Row changes per second the stream applies.
    #[serde(default)]
    pub incremental_rps: Option<f64>,
    /// MB per second (10^6 bytes of pgoutput change data) the stream applies.
    #[serde(default)]
    pub incremental_mbps: Option<f64>,
}

// The limits are finite positive numbers (validated), never NaN.
impl Eq for ThrottleSpec {}

impl ThrottleSpec {
    /// `{ full_qps = 10, … }` with the set limits only (`{}` when none).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("full_qps", self.full_qps),
            ("full_rps", self.full_rps),
            ("full_mbps", self.full_mbps),
            ("incremental_rps", self.incremental_rps),
            ("incremental_mbps", self.incremental_mbps),
        ]
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} = {v}")))
        .collect();
        if parts.is_empty() {
            "{}".to_owned()
        } else {
            format!("{{ {} }}", parts.join(", "))
        }
    }
}

/// The `retry` block (DTS "retry time for failed connections" and "for
/// other issues"): how long the stream keeps retrying before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySpec {
    /// Minutes a lost source or destination connection is retried
    /// (10..=1440, default 720).
    pub connection_minutes: u32,
    /// Minutes a failing DDL or DML statement on the destination is retried
    /// (1..=1440, default 10; less than `connection_minutes`).
    pub other_minutes: u32,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            connection_minutes: 720,
            other_minutes: 10,
        }
    }
}

/// Matches `name` against a glob where `*` stands for any run of characters
/// (the `exclude_tables` and `mapping.match` syntax). Case-sensitive.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

impl ObjectSelection {
    /// Whether this selection takes table `schema.name`.
    pub fn selects(&self, schema: &str, name: &str) -> bool {
        match self {
            ObjectSelection::Schema {
                name: s,
                exclude_tables,
                ..
            } => s == schema && !exclude_tables.iter().any(|g| glob_matches(g, name)),
            ObjectSelection::Table {
                schema: s, name: n, ..
            } => s == schema && n == name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_dts_batch_edit() {
        assert!(glob_matches("audit_*", "audit_log"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("audit_*", "xaudit_log"));
        assert!(glob_matches("a*c*e", "abcde"));
    }

    #[test]
    fn schema_selection_honours_excludes() {
        let sel = ObjectSelection::Schema {
            name: "public".into(),
            exclude_tables: vec!["tmp_*".into()],
            rename: None,
            operations: None,
        };
        assert!(sel.selects("public", "film"));
        assert!(!sel.selects("public", "tmp_x"));
        assert!(!sel.selects("other", "film"));
    }
}
