//! Opening sessions with the settings every pgsync session runs under, and
//! with the endpoint's TLS and authentication settings resolved as libpq
//! resolves them (`params`), over OpenSSL (`tls`). See docs/security.md.

mod params;
mod tls;

use std::sync::Arc;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use crate::model::{EndpointSpec, SslMode};

pub use params::{ConnParams, Environment, PasswordFrom, resolve};

/// Session settings pinned on every connection pgsync opens, so values
/// travel in the same text form on both sides: ISO dates, `postgres`
/// interval style, shortest-exact floats (`extra_float_digits = 3`), UTC,
/// hex bytea; and `synchronous_commit = on`, so a destination commit is
/// durable before its LSN is confirmed to the slot (exactly-once apply
/// holds even on a server configured with asynchronous commit). Startup options beat `alter database/role … set`, so a source
/// database with other defaults still sends the same text.
pub const SESSION_OPTIONS: &str = "-c datestyle=ISO,MDY -c intervalstyle=postgres \
     -c extra_float_digits=3 -c timezone=UTC -c standard_conforming_strings=on \
     -c bytea_output=hex -c synchronous_commit=on";

/// A failed database call, naming the endpoint and what pgsync was doing.
#[derive(Debug)]
pub struct PgError {
    /// What pgsync was doing ("connect", "create publication", …).
    pub doing: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// The driver's error, or why a connection could not be opened.
    pub source: PgCause,
}

/// The cause of a [`PgError`].
#[derive(Debug)]
pub enum PgCause {
    /// The driver's error (its Display has the server's message).
    Driver(tokio_postgres::Error),
    /// A connection failure explained in words (TLS, authentication,
    /// settings); it carries its own complete message.
    Connect(ConnectFailure),
}

impl PgError {
    /// The fix for a failed connection, when this is one.
    pub fn connect_hint(&self) -> Option<String> {
        match &self.source {
            PgCause::Connect(c) => Some(c.hint()),
            PgCause::Driver(_) if self.doing.starts_with("connect") => Some(format!(
                "check host, port and database of endpoint {:?} and that its server accepts connections from here",
                self.endpoint
            )),
            PgCause::Driver(_) => None,
        }
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            PgCause::Driver(_) => write!(f, "{} on endpoint {:?}", self.doing, self.endpoint),
            PgCause::Connect(c) => write!(
                f,
                "{} on endpoint {:?}: {}",
                c.headline(),
                self.endpoint,
                c.reason()
            ),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            PgCause::Driver(e) => Some(e),
            PgCause::Connect(_) => None,
        }
    }
}

impl PgError {
    /// Wraps a driver error.
    pub fn new(doing: impl Into<String>, endpoint: &str, source: tokio_postgres::Error) -> Self {
        PgError {
            doing: doing.into(),
            endpoint: endpoint.to_owned(),
            source: PgCause::Driver(source),
        }
    }

    /// A connection that could not be opened, for a reason in words.
    pub fn connect_failed(endpoint: &str, failure: ConnectFailure) -> Self {
        PgError {
            doing: "connect".into(),
            endpoint: endpoint.to_owned(),
            source: PgCause::Connect(failure),
        }
    }

    /// The driver's error, when there is one.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        match &self.source {
            PgCause::Driver(e) => Some(e),
            PgCause::Connect(_) => None,
        }
    }

    /// Whether retrying may help: connection failures and SQLSTATE classes
    /// 08 (connection exception), 40 (rollback: serialization, deadlock),
    /// 53 (insufficient resources), 57P01–57P03 (admin shutdown, crash).
    /// TLS, authentication and settings failures are not transient.
    pub fn is_transient(&self) -> bool {
        let PgCause::Driver(source) = &self.source else {
            return false;
        };
        match source.code() {
            None => source.is_closed() || source.as_db_error().is_none(),
            Some(code) => {
                let c = code.code();
                c.starts_with("08")
                    || c.starts_with("40")
                    || c.starts_with("53")
                    || matches!(c, "57P01" | "57P02" | "57P03")
            }
        }
    }

    /// The server's SQLSTATE, when it sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        self.driver_error().and_then(|e| e.code()).map(|c| c.code())
    }
}

/// Why a connection could not be opened, in words: no driver jargon and
/// never a password or key password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The endpoint's TLS or password settings cannot be used (a missing
    /// file, a key that does not decrypt, an unsupported `PGSSLMODE`, …).
    Settings(String),
    /// The server does not offer TLS and `sslmode` demands it.
    NoTls {
        /// `host:port`.
        address: String,
        /// `"require" (from the configuration)`, …
        sslmode: String,
    },
    /// The TLS handshake failed (certificate verification, protocol).
    Tls {
        /// `host:port`.
        address: String,
        /// Why.
        reason: String,
    },
    /// The server refused the login.
    Auth {
        /// The role.
        user: String,
        /// Why.
        reason: String,
    },
    /// The server accepted the TCP connection but did not finish the
    /// startup handshake in time (a wrong port, a proxy, a stuck server).
    Timeout {
        /// `host:port`.
        address: String,
        /// Seconds waited.
        seconds: u64,
    },
}

/// How long connecting, TLS and authentication together may take:
/// `$PGSYNC_CONNECT_TIMEOUT` seconds, default 30.
pub fn connect_timeout() -> std::time::Duration {
    let secs = std::env::var("PGSYNC_CONNECT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(30);
    std::time::Duration::from_secs(secs)
}

impl ConnectFailure {
    /// What failed: "TLS handshake failed", "authentication failed for user
    /// \"alice\"", …
    pub fn headline(&self) -> String {
        match self {
            ConnectFailure::Settings(_) => "unusable connection settings".into(),
            ConnectFailure::NoTls { .. } => "TLS is not available".into(),
            ConnectFailure::Tls { .. } => "TLS handshake failed".into(),
            ConnectFailure::Auth { user, .. } => format!("authentication failed for user {user:?}"),
            ConnectFailure::Timeout { .. } => "the server did not answer".into(),
        }
    }

    /// Why.
    pub fn reason(&self) -> String {
        match self {
            ConnectFailure::Settings(m) => m.clone(),
            ConnectFailure::NoTls { address, sslmode } => format!(
                "the server at {address} does not accept TLS connections, and sslmode = {sslmode} \
                 requires TLS"
            ),
            ConnectFailure::Tls { address, reason } => format!("{reason} (server {address})"),
            ConnectFailure::Auth { reason, .. } => reason.clone(),
            ConnectFailure::Timeout { address, seconds } => format!(
                "{address} accepted the connection but did not complete the PostgreSQL startup within {seconds} s"
            ),
        }
    }

    /// One imperative sentence on what to change.
    pub fn hint(&self) -> String {
        match self {
            ConnectFailure::Settings(_) => {
                "fix the file or setting named above in the endpoint block (or the PG* variable it came from)".into()
            }
            ConnectFailure::NoTls { .. } => {
                "turn on ssl in the server's postgresql.conf, or lower the endpoint's sslmode".into()
            }
            ConnectFailure::Tls { .. } => {
                "check the endpoint's sslrootcert (the CA that signed the server certificate) and that the host name matches the certificate".into()
            }
            ConnectFailure::Auth { user, .. } => format!(
                "check the password of role {user:?} (the endpoint's password, PGPASSWORD or the password file) and the server's pg_hba.conf"
            ),
            ConnectFailure::Timeout { .. } => {
                "check that host and port point at a PostgreSQL server (not a proxy or another service)".into()
            }
        }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.headline(), self.reason())
    }
}

impl std::error::Error for ConnectFailure {}

/// A connected client; the connection is driven by a spawned task that ends
/// when the client is dropped.
pub struct Connected {
    /// The client.
    pub client: Client,
    /// The endpoint's name, for error messages.
    pub endpoint: String,
}

impl Connected {
    /// Wraps an error from this client with what was being done.
    pub fn err(&self, doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let endpoint = self.endpoint.clone();
        let doing = doing.into();
        move |source| PgError::new(doing, &endpoint, source)
    }
}

/// Connects to `endpoint` as application `pgsync`, with its TLS and
/// authentication settings resolved as libpq resolves them (configuration,
/// then `PG*` environment variables, then `~/.pgpass` and
/// `~/.postgresql/*`). Under `sslmode = "prefer"` a failed TLS attempt is
/// retried without TLS, as libpq does.
///
/// # Errors
/// [`PgError`] naming the endpoint; TLS, authentication and settings
/// failures are [`PgCause::Connect`] with the reason in words.
/// `is_transient()` tells whether to retry.
pub async fn connect(endpoint: &EndpointSpec) -> Result<Connected, PgError> {
    let params = resolve(endpoint, &Environment::process())
        .map_err(|f| PgError::connect_failed(&endpoint.name, f))?;
    let limit = connect_timeout();
    match tokio::time::timeout(limit, connect_with(&params)).await {
        Ok(result) => result,
        Err(_) => Err(PgError::connect_failed(
            &endpoint.name,
            ConnectFailure::Timeout {
                address: format!("{}:{}", params.host, params.port),
                seconds: limit.as_secs(),
            },
        )),
    }
}

/// Reads and checks the TLS certificate and key files `p` names (as
/// [`connect_with`] does before connecting), for transports that read them
/// themselves (libpq, for the replication session).
///
/// # Errors
/// [`ConnectFailure::Settings`] naming the file and the problem.
pub fn check_tls_files(p: &ConnParams) -> Result<(), ConnectFailure> {
    match &p.tls {
        Some(t) => tls::Material::load(t).map(|_| ()),
        None => Ok(()),
    }
}

/// [`connect`] with settings already resolved.
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(params: &ConnParams) -> Result<Connected, PgError> {
    let fail = |f: ConnectFailure| PgError::connect_failed(&params.endpoint, f);
    let client = match &params.tls {
        None => open(&config(params, false), NoTls, &params.endpoint)
            .await
            .map_err(|e| classify(params, e, None))?,
        Some(tls_params) => {
            let material = tls::Material::load(tls_params).map_err(fail)?;
            let probe = Arc::new(tls::Probe::default());
            let make = material.connector(tls_params, &probe).map_err(fail)?;
            match open(&config(params, true), make, &params.endpoint).await {
                Ok(client) => client,
                Err(err) => {
                    let first = classify(params, err, Some((tls_params, &probe)));
                    // libpq's `prefer`: when the server took TLS but the TLS
                    // attempt failed (handshake or startup error), try once
                    // more without TLS.
                    if params.sslmode != SslMode::Prefer || !probe.started() {
                        return Err(first);
                    }
                    tracing::debug!(endpoint = %params.endpoint, error = %first, "TLS attempt failed under sslmode \"prefer\"; retrying without TLS");
                    match open(&config(params, false), NoTls, &params.endpoint).await {
                        Ok(client) => client,
                        Err(err) => {
                            let second = classify(params, err, None);
                            // A server that only admits TLS says "no
                            // pg_hba.conf entry … no encryption": the TLS
                            // failure is the real story then.
                            let hba_refusal = second
                                .driver_error()
                                .and_then(|e| e.as_db_error())
                                .is_some_and(|d| d.message().starts_with("no pg_hba.conf entry"))
                                || matches!(&second.source, PgCause::Connect(ConnectFailure::Auth { reason, .. }) if reason.starts_with("no pg_hba.conf entry"));
                            return Err(if hba_refusal { first } else { second });
                        }
                    }
                }
            }
        }
    };
    Ok(Connected {
        client,
        endpoint: params.endpoint.clone(),
    })
}

fn config(p: &ConnParams, tls: bool) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&p.host)
        .port(p.port)
        .dbname(&p.database)
        .user(&p.user)
        .application_name("pgsync")
        .options(SESSION_OPTIONS)
        .connect_timeout(std::time::Duration::from_secs(10))
        .ssl_mode(match (tls, p.sslmode) {
            (false, _) | (_, SslMode::Disable) => tokio_postgres::config::SslMode::Disable,
            (true, SslMode::Prefer) => tokio_postgres::config::SslMode::Prefer,
            (true, _) => tokio_postgres::config::SslMode::Require,
        });
    if let Some(password) = &p.password {
        config.password(password.expose());
    }
    config
}

/// Connects and spawns the connection's driver task.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
    endpoint: &str,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    let name = endpoint.to_owned();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(endpoint = %name, error = %err, "connection closed");
        }
    });
    Ok(client)
}

/// Turns a driver error from connecting into words where it is about TLS or
/// authentication; other errors (network, server state) stay driver errors.
fn classify(
    p: &ConnParams,
    err: tokio_postgres::Error,
    tls: Option<(&params::TlsParams, &tls::Probe)>,
) -> PgError {
    let failed = |f| PgError::connect_failed(&p.endpoint, f);
    if let Some(db) = err.as_db_error() {
        if db.code().code().starts_with("28") {
            return failed(ConnectFailure::Auth {
                user: p.user.clone(),
                reason: auth_reason(p, db.code().code(), db.message()),
            });
        }
        return PgError::new(
            format!("connect to {}:{}", p.host, p.port),
            &p.endpoint,
            err,
        );
    }
    let text = crate::error::chain(&err);
    if text.contains("password missing") {
        let why = match &p.password_from {
            PasswordFrom::Nowhere(why) => why.clone(),
            _ => String::new(),
        };
        return failed(ConnectFailure::Auth {
            user: p.user.clone(),
            reason: format!("the server asks for a password and none is set ({why})"),
        });
    }
    let Some((tls_params, probe)) = tls else {
        return PgError::new(
            format!("connect to {}:{}", p.host, p.port),
            &p.endpoint,
            err,
        );
    };
    if let Some(f) = probe.failure() {
        return failed(ConnectFailure::Tls {
            address: p.address(),
            reason: tls::explain(&f, tls_params, &p.host),
        });
    }
    let detail = std::error::Error::source(&err)
        .map(|s| openssl_reason(&s.to_string()))
        .unwrap_or_default();
    if text.starts_with("error performing TLS handshake") {
        if !probe.started() {
            return failed(ConnectFailure::NoTls {
                address: p.address(),
                sslmode: format!("{:?}{}", p.sslmode.as_str(), p.sslmode_from.suffix()),
            });
        }
        let mut reason = format!("OpenSSL: {detail}");
        if tls_params.client.is_some() && detail.contains("alert") {
            reason.push_str(" (the server may have rejected pgsync's client certificate)");
        }
        return failed(ConnectFailure::Tls {
            address: p.address(),
            reason,
        });
    }
    // With TLS 1.3 the server rejects a client certificate after the
    // client's side of the handshake is done: the alert arrives as a read
    // error.
    if probe.started() && tls_params.client.is_some() && detail.contains("alert") {
        return failed(ConnectFailure::Tls {
            address: p.address(),
            reason: format!("the server rejected pgsync's client certificate (OpenSSL: {detail})"),
        });
    }
    PgError::new(
        format!("connect to {}:{}", p.host, p.port),
        &p.endpoint,
        err,
    )
}

/// The reason strings of an OpenSSL error stack
/// (`error:0A000086:SSL routines:func:certificate verify failed:file:line:`),
/// or the text as it is.
fn openssl_reason(text: &str) -> String {
    let reasons: Vec<&str> = text
        .split("error:")
        .filter_map(|part| part.split(':').nth(3))
        .filter(|r| !r.is_empty())
        .collect();
    if reasons.is_empty() {
        text.trim().to_owned()
    } else {
        reasons.join("; ")
    }
}

/// Words for an authentication failure (SQLSTATE class 28).
fn auth_reason(p: &ConnParams, code: &str, server: &str) -> String {
    if code == "28P01" {
        return match &p.password_from {
            PasswordFrom::Configuration => {
                "the server rejected the password (from `password` in the configuration)".into()
            }
            PasswordFrom::Env => "the server rejected the password (from PGPASSWORD)".into(),
            PasswordFrom::File(file) => format!(
                "the server rejected the password (from password file {})",
                params::show(file)
            ),
            PasswordFrom::Nowhere(_) => format!("the server rejected the login: {server}"),
        };
    }
    let client_cert = p.tls.as_ref().and_then(|t| t.client.as_ref());
    if server.contains("requires a valid client certificate") && client_cert.is_none() {
        return format!("{server}: set `sslcert` and `sslkey`");
    }
    if server.starts_with("certificate authentication failed") {
        return format!(
            "{server}: the client certificate's common name (CN) must be the role name, or be \
             mapped to it in pg_ident.conf"
        );
    }
    server.to_owned()
}

/// A libpq connection string for a logical replication connection
/// (`replication=database`) with every resolved setting given explicitly,
/// so libpq and the tokio-postgres path use the same ones. It holds the
/// password and key password: hand it to the driver and never log it.
pub fn replication_conninfo(p: &ConnParams) -> String {
    let mut parts = vec![
        kv("host", &p.host),
        kv("port", &p.port.to_string()),
        kv("dbname", &p.database),
        kv("user", &p.user),
        kv("application_name", "pgsync"),
        kv("replication", "database"),
        kv("connect_timeout", "10"),
        kv("options", SESSION_OPTIONS),
        // tokio-postgres has no GSSAPI encryption; keep both paths alike.
        kv("gssencmode", "disable"),
    ];
    match &p.tls {
        None => parts.push(kv("sslmode", "disable")),
        Some(t) => {
            parts.push(kv("sslmode", p.sslmode.as_str()));
            if let Some(root) = t.rootcert.as_ref().filter(|_| t.verify_chain) {
                parts.push(kv("sslrootcert", &root.to_string_lossy()));
            }
            if let Some(c) = &t.client {
                parts.push(kv("sslcert", &c.cert.to_string_lossy()));
                parts.push(kv("sslkey", &c.key.to_string_lossy()));
                if let Some(pw) = &c.password {
                    parts.push(kv("sslpassword", pw.expose()));
                }
            }
            parts.push(kv("sslsni", if t.sni { "1" } else { "0" }));
        }
    }
    if let Some(password) = &p.password {
        parts.push(kv("password", password.expose()));
    }
    if let Some(file) = &p.passfile {
        parts.push(kv("passfile", &file.to_string_lossy()));
    }
    parts.join(" ")
}

/// `key='value'` with `\` and `'` escaped (libpq docs §34.1.1).
fn kv(key: &str, value: &str) -> String {
    let mut out = format!("{key}='");
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Secret, TlsFiles};

    fn params(password: Option<&str>) -> ConnParams {
        let ep = EndpointSpec {
            name: "src".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            database: "a b".into(),
            user: "o'neil".into(),
            password: password.map(Secret::new),
            sslmode: Some(SslMode::Require),
            tls: TlsFiles {
                sslsni: Some(false),
                ..TlsFiles::default()
            },
            passfile: None,
        };
        let lookup = |_: &str| None;
        let env = Environment {
            var: &lookup,
            home: None,
        };
        resolve(&ep, &env).unwrap()
    }

    #[test]
    fn conninfo_escapes_values_and_carries_tls_settings() {
        let s = replication_conninfo(&params(Some("p\\w")));
        assert!(s.contains("dbname='a b'"), "{s}");
        assert!(s.contains("user='o\\'neil'"), "{s}");
        assert!(s.contains("password='p\\\\w'"), "{s}");
        assert!(s.contains("replication='database'"), "{s}");
        assert!(s.contains("sslmode='require'"), "{s}");
        assert!(s.contains("sslsni='0'"), "{s}");
        assert!(!s.contains("sslrootcert"), "{s}");
    }

    #[test]
    fn openssl_error_stacks_become_their_reasons() {
        assert_eq!(
            openssl_reason(
                "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889:"
            ),
            "certificate verify failed"
        );
        assert_eq!(openssl_reason("plain words"), "plain words");
    }

    #[test]
    fn connect_failures_read_as_one_sentence() {
        let e = PgError::connect_failed(
            "dst",
            ConnectFailure::Auth {
                user: "bob".into(),
                reason: "the server rejected the password (from PGPASSWORD)".into(),
            },
        );
        assert_eq!(
            crate::error_chain(&e),
            "authentication failed for user \"bob\" on endpoint \"dst\": the server rejected \
             the password (from PGPASSWORD)"
        );
        assert!(!e.is_transient());
    }
}
