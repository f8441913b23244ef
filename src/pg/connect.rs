//! Opening sessions with the settings every pgsync session runs under.

use tokio_postgres::{Client, NoTls};

use crate::model::{EndpointSpec, SslMode};

/// Session settings pinned on every connection pgsync opens, so values
/// travel in the same text form on both sides: ISO dates, `postgres`
/// interval style, shortest-exact floats (`extra_float_digits = 3`), UTC,
/// hex bytea. Startup options beat `alter database/role … set`, so a source
/// database with other defaults still sends the same text.
pub const SESSION_OPTIONS: &str = "-c datestyle=ISO,MDY -c intervalstyle=postgres \
     -c extra_float_digits=3 -c timezone=UTC -c standard_conforming_strings=on \
     -c bytea_output=hex";

/// A failed database call, naming the endpoint and what pgsync was doing.
#[derive(Debug, thiserror::Error)]
#[error("{doing} on endpoint {endpoint:?}")]
pub struct PgError {
    /// What pgsync was doing ("connect", "create publication", …).
    pub doing: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// The driver's error (its Display has the server's message).
    #[source]
    pub source: tokio_postgres::Error,
}

impl PgError {
    /// Wraps a driver error.
    pub fn new(doing: impl Into<String>, endpoint: &str, source: tokio_postgres::Error) -> Self {
        PgError {
            doing: doing.into(),
            endpoint: endpoint.to_owned(),
            source,
        }
    }

    /// Whether retrying may help: connection failures and SQLSTATE classes
    /// 08 (connection exception), 40 (rollback: serialization, deadlock),
    /// 53 (insufficient resources), 57P01–57P03 (admin shutdown, crash).
    pub fn is_transient(&self) -> bool {
        match self.source.code() {
            None => self.source.is_closed() || self.source.as_db_error().is_none(),
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
        self.source.code().map(|c| c.code())
    }
}

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
        move |source| PgError {
            doing,
            endpoint,
            source,
        }
    }
}

/// Connects to `endpoint` as application `pgsync`.
///
/// TLS (issue 7) is not built in yet: `sslmode = "prefer"` connects without
/// TLS and the stricter modes are refused by `config` validation.
///
/// # Errors
/// [`PgError`] naming the endpoint; `is_transient()` tells whether to retry.
pub async fn connect(endpoint: &EndpointSpec) -> Result<Connected, PgError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .dbname(&endpoint.database)
        .user(&endpoint.user)
        .application_name("pgsync")
        .options(SESSION_OPTIONS)
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(password) = &endpoint.password {
        config.password(password.expose());
    }
    config.ssl_mode(match endpoint.sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        _ => tokio_postgres::config::SslMode::Prefer,
    });
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|source| PgError::new("connect", &endpoint.name, source))?;
    let name = endpoint.name.clone();
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(endpoint = %name, error = %err, "connection closed");
        }
    });
    Ok(Connected {
        client,
        endpoint: endpoint.name.clone(),
    })
}

/// A libpq connection string for a logical replication connection to
/// `endpoint` (`replication=database`). It holds the password: hand it to the
/// driver and never log it.
pub fn replication_conninfo(endpoint: &EndpointSpec) -> String {
    let mut parts = vec![
        kv("host", &endpoint.host),
        kv("port", &endpoint.port.to_string()),
        kv("dbname", &endpoint.database),
        kv("user", &endpoint.user),
        kv("application_name", "pgsync"),
        kv("replication", "database"),
        kv(
            "sslmode",
            if endpoint.sslmode == SslMode::Disable {
                "disable"
            } else {
                "prefer"
            },
        ),
        kv("connect_timeout", "10"),
        kv("options", SESSION_OPTIONS),
    ];
    if let Some(password) = &endpoint.password {
        parts.push(kv("password", password.expose()));
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
    use crate::model::Secret;

    #[test]
    fn conninfo_escapes_values() {
        let ep = EndpointSpec {
            name: "src".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            database: "a b".into(),
            user: "o'neil".into(),
            password: Some(Secret::new("p\\w")),
            sslmode: SslMode::Prefer,
        };
        let s = replication_conninfo(&ep);
        assert!(s.contains("dbname='a b'"), "{s}");
        assert!(s.contains("user='o\\'neil'"), "{s}");
        assert!(s.contains("password='p\\\\w'"), "{s}");
        assert!(s.contains("replication='database'"), "{s}");
    }
}
