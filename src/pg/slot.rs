//! The logical replication connection: slot creation with an exported
//! snapshot, `START_REPLICATION`, CopyBoth frames and standby status updates.
//!
//! tokio-postgres 0.7 cannot open a replication connection, so this file is
//! the only user of `pg_walstream` (pinned; its API changes often), whose
//! libpq-based transport we use and nothing more: decoding pgoutput is ours
//! (`crate::replication`). See docs/architecture.md, "Replication transport".

use bytes::Bytes;
use pg_walstream::connection::PgReplicationConnection;
use tokio_util::sync::CancellationToken;

use super::connect::{self, ConnParams, ConnectFailure, PgCause};
use crate::model::{EndpointSpec, Lsn};
use crate::sql::ident;

/// A replication-connection failure, naming the endpoint and the step.
#[derive(Debug, thiserror::Error)]
#[error("{doing} on endpoint {endpoint:?}: {message}")]
pub struct SlotError {
    /// The step ("open replication connection", "create slot", …).
    pub doing: String,
    /// Endpoint name.
    pub endpoint: String,
    /// The transport's message (never contains the password).
    pub message: String,
    /// Whether reconnecting may help.
    pub transient: bool,
    /// The stream was cancelled by us.
    pub cancelled: bool,
}

/// The result of `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`
/// (PostgreSQL docs §55.4): the snapshot stays importable while this
/// session stays open and idle.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    /// WAL position from which the slot decodes; everything committed
    /// before it is in the snapshot, everything after arrives in the stream.
    pub consistent_lsn: Lsn,
    /// Name for `SET TRANSACTION SNAPSHOT`.
    pub snapshot_name: String,
}

/// What the stream asks pgoutput for, chosen by the source's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// pgoutput protocol version (`proto_version`): 1, or 2 from
    /// PostgreSQL 14 on (docs §55.5 "Logical Streaming Replication Protocol").
    pub proto_version: u32,
    /// `streaming 'on'`: transactions larger than the server's
    /// `logical_decoding_work_mem` are sent while still in progress
    /// (protocol 2 and up).
    pub streaming: bool,
    /// `messages 'true'`: logical decoding messages (`pg_logical_emit_message`)
    /// are sent (pgoutput accepts the option from PostgreSQL 14 on).
    pub messages: bool,
}

impl StreamOptions {
    /// The options for a server whose `server_version_num` is `version`
    /// (e.g. 150014): protocol 2 with streaming and messages from 14 on,
    /// protocol 1 without either before.
    pub fn for_server(version: i32) -> StreamOptions {
        let v14 = version >= 140_000;
        StreamOptions {
            proto_version: if v14 { 2 } else { 1 },
            streaming: v14,
            messages: v14,
        }
    }
}

/// The `START_REPLICATION … LOGICAL` option list for `options` and
/// `publication`, as (name, value) pairs the transport quotes.
///
/// `publication_names` is a list of identifiers (SplitIdentifierString): the
/// name is double-quoted, so a name given in the task's `publication` keeps
/// its case, commas and quotes.
pub fn start_options(options: StreamOptions, publication: &str) -> Vec<(&'static str, String)> {
    let mut list = vec![
        ("proto_version", options.proto_version.to_string()),
        ("publication_names", crate::sql::ident(publication)),
    ];
    if options.messages {
        list.push(("messages", "true".to_owned()));
    }
    if options.streaming {
        list.push(("streaming", "on".to_owned()));
    }
    list
}

/// One replication session to a source.
pub struct ReplicationSession {
    conn: PgReplicationConnection,
    endpoint: String,
}

impl ReplicationSession {
    /// Opens a `replication=database` session with the endpoint's TLS and
    /// authentication settings, resolved exactly as for the other sessions
    /// (`pg::connect`) and handed to libpq explicitly.
    ///
    /// # Errors
    /// [`SlotError`] (transient for network failures); TLS and
    /// authentication failures carry the same words as on the other
    /// sessions.
    pub async fn open(endpoint: &EndpointSpec) -> Result<ReplicationSession, SlotError> {
        let params = connect::resolve(endpoint, &connect::Environment::process())
            .map_err(|f| from_failure(&endpoint.name, &f))?;
        ReplicationSession::open_with(&params).await
    }

    /// [`ReplicationSession::open`] with settings already resolved
    /// ([`connect::resolve`]).
    ///
    /// # Errors
    /// As [`ReplicationSession::open`].
    pub async fn open_with(params: &ConnParams) -> Result<ReplicationSession, SlotError> {
        let endpoint = &params.endpoint;
        // Read and check the certificate and key files first: libpq would
        // only say "could not load private key file", or prompt for a key
        // password on the terminal.
        connect::check_tls_files(params).map_err(|f| from_failure(endpoint, &f))?;
        let conninfo = super::replication_conninfo(params);
        let conn = match PgReplicationConnection::connect_async(&conninfo).await {
            Ok(conn) => conn,
            Err(e) => return Err(explain_connect_error(params, e).await),
        };
        Ok(ReplicationSession {
            conn,
            endpoint: endpoint.clone(),
        })
    }

    /// Creates logical slot `slot` with the pgoutput plugin, exporting its
    /// snapshot. Run nothing else on this session until every COPY worker
    /// has imported the snapshot.
    ///
    /// # Errors
    /// [`SlotError`], e.g. when the slot exists or no slot is free.
    pub async fn create_slot(&mut self, slot: &str) -> Result<CreatedSlot, SlotError> {
        self.create_slot_with(slot, false).await
    }

    /// [`ReplicationSession::create_slot`]; a `temporary` slot is dropped by
    /// the server when this session ends (or fails), so it can never be
    /// left behind.
    ///
    /// # Errors
    /// [`SlotError`].
    pub async fn create_slot_with(
        &mut self,
        slot: &str,
        temporary: bool,
    ) -> Result<CreatedSlot, SlotError> {
        let temp = if temporary { " TEMPORARY" } else { "" };
        // The parenthesized option list exists from PostgreSQL 15 on; the
        // keyword form (EXPORT_SNAPSHOT) from 10 on (docs §55.4).
        let sql = if self.conn.server_version() >= 150_000 {
            format!(
                "CREATE_REPLICATION_SLOT {}{temp} LOGICAL pgoutput (SNAPSHOT 'export')",
                ident(slot)
            )
        } else {
            format!(
                "CREATE_REPLICATION_SLOT {}{temp} LOGICAL pgoutput EXPORT_SNAPSHOT",
                ident(slot)
            )
        };
        let res = self
            .conn
            .exec_async(&sql)
            .await
            .map_err(|e| convert("create replication slot", &self.endpoint, e))?;
        let bad = |what: &str| SlotError {
            doing: "create replication slot".into(),
            endpoint: self.endpoint.clone(),
            message: format!("server reply lacks {what}"),
            transient: false,
            cancelled: false,
        };
        let consistent = res.get_value(0, 1).ok_or_else(|| bad("consistent_point"))?;
        let snapshot_name = res.get_value(0, 2).ok_or_else(|| bad("snapshot_name"))?;
        let consistent_lsn = consistent
            .parse()
            .map_err(|_| bad("a valid consistent_point"))?;
        Ok(CreatedSlot {
            consistent_lsn,
            snapshot_name,
        })
    }

    /// `START_REPLICATION SLOT slot LOGICAL start (…)` with the pgoutput
    /// options of [`start_options`] for this server's version, which it
    /// returns.
    ///
    /// From PostgreSQL 14 on the stream runs protocol version 2 with
    /// `streaming 'on'`: a transaction larger than the server's
    /// `logical_decoding_work_mem` arrives in blocks while it is still in
    /// progress (Stream Start … Stream Stop, then Stream Commit or Stream
    /// Abort) and the caller keeps it on local disk until it commits
    /// (`engine::spill`). PostgreSQL 13 runs protocol version 1: the server
    /// sends each transaction whole after its commit, spilling large ones
    /// to its own disk.
    ///
    /// # Errors
    /// [`SlotError`], e.g. when the slot is missing or active elsewhere.
    pub async fn start(
        &mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<StreamOptions, SlotError> {
        let chosen = StreamOptions::for_server(self.conn.server_version());
        let options = start_options(chosen, publication);
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.conn
            .start_replication_async(slot, start.0, &options)
            .await
            .map_err(|e| convert("start replication", &self.endpoint, e))?;
        Ok(chosen)
    }

    /// The next CopyData payload (`w` XLogData or `k` keepalive).
    ///
    /// # Errors
    /// [`SlotError`]; `cancelled` when `cancel` fired.
    pub async fn next_frame(&mut self, cancel: &CancellationToken) -> Result<Bytes, SlotError> {
        self.conn
            .get_copy_data_async(cancel)
            .await
            .map_err(|e| convert("read replication stream", &self.endpoint, e))
    }

    /// Sends a standby status update: `written`/`flushed` are what the slot
    /// may consider received and durably applied.
    ///
    /// # Errors
    /// [`SlotError`] when the connection is gone.
    pub async fn send_status(&mut self, flushed: Lsn, reply: bool) -> Result<(), SlotError> {
        self.conn
            .send_standby_status_update(flushed.0, flushed.0, flushed.0, reply)
            .await
            .map_err(|e| convert("send standby status", &self.endpoint, e))
    }
}

fn from_failure(endpoint: &str, f: &ConnectFailure) -> SlotError {
    SlotError {
        doing: f.headline(),
        endpoint: endpoint.to_owned(),
        message: f.reason(),
        transient: false,
        cancelled: false,
    }
}

/// libpq's connect failure in the same words as the other sessions': when
/// it is about TLS or authentication, an ordinary connection with the same
/// settings names the exact reason (libpq says only "certificate verify
/// failed"); libpq's own text is the fallback.
async fn explain_connect_error(p: &ConnParams, err: pg_walstream::ReplicationError) -> SlotError {
    let text = err.to_string();
    let lower = text.to_lowercase();
    let about_tls = ["ssl", "certificate", "tls"]
        .iter()
        .any(|w| lower.contains(w));
    let about_auth = ["authentication", "password", "pg_hba"]
        .iter()
        .any(|w| lower.contains(w));
    if !about_tls && !about_auth {
        return convert("open replication connection", &p.endpoint, err);
    }
    if let Err(e) = connect::connect_with(p).await
        && let PgCause::Connect(f) = &e.source
    {
        return from_failure(&p.endpoint, f);
    }
    let said = libpq_words(&text);
    let failure = if lower.contains("server does not support ssl") {
        ConnectFailure::NoTls {
            address: p.address(),
            sslmode: format!("{:?}", p.sslmode.as_str()),
        }
    } else if about_auth {
        ConnectFailure::Auth {
            user: p.user.clone(),
            reason: said,
        }
    } else {
        ConnectFailure::Tls {
            address: p.address(),
            reason: said,
        }
    };
    from_failure(&p.endpoint, &failure)
}

/// The message libpq gave, without pg_walstream's and libpq's prefixes.
fn libpq_words(text: &str) -> String {
    let mut t = text.trim();
    for prefix in [
        "Authentication failed: ",
        "Transient connection error: ",
        "Permanent connection error: ",
        "PostgreSQL authentication failed: ",
        "PostgreSQL connection failed (transient): ",
        "PostgreSQL connection failed (permanent): ",
    ] {
        t = t.strip_prefix(prefix).unwrap_or(t);
    }
    let lines: Vec<String> = t
        .lines()
        .map(|line| {
            let line = line.trim();
            // "connection to server at "h" (addr), port N failed: FATAL:  …"
            let line = line.rsplit_once(" failed: ").map_or(line, |(_, rest)| rest);
            line.trim_start_matches("FATAL:").trim().to_owned()
        })
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

fn convert(doing: &str, endpoint: &str, err: pg_walstream::ReplicationError) -> SlotError {
    use pg_walstream::ReplicationError as E;
    let transient = matches!(err, E::TransientConnection(_) | E::Timeout(_) | E::Io(_));
    let cancelled = matches!(err, E::Cancelled(_));
    SlotError {
        doing: doing.to_owned(),
        endpoint: endpoint.to_owned(),
        message: err.to_string().trim().to_owned(),
        transient,
        cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::{StreamOptions, libpq_words, start_options};

    #[test]
    fn protocol_2_with_streaming_from_postgresql_14() {
        let v13 = StreamOptions::for_server(130_023);
        assert_eq!(
            start_options(v13, "App,Pub \"1\""),
            [
                ("proto_version", "1".to_owned()),
                ("publication_names", "\"App,Pub \"\"1\"\"\"".to_owned()),
            ]
        );
        for version in [140_000, 150_014, 170_010] {
            let opts = StreamOptions::for_server(version);
            assert_eq!(
                opts,
                StreamOptions {
                    proto_version: 2,
                    streaming: true,
                    messages: true
                }
            );
            assert_eq!(
                start_options(opts, "dts_pub"),
                [
                    ("proto_version", "2".to_owned()),
                    ("publication_names", "\"dts_pub\"".to_owned()),
                    ("messages", "true".to_owned()),
                    ("streaming", "on".to_owned()),
                ]
            );
        }
    }

    #[test]
    fn libpq_failures_lose_the_transport_prefixes() {
        assert_eq!(
            libpq_words(
                "Authentication failed: PostgreSQL authentication failed: connection to server at \
                 \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \
                 \"alice\"\n"
            ),
            "password authentication failed for user \"alice\""
        );
        assert_eq!(
            libpq_words(
                "Transient connection error: PostgreSQL connection failed (transient): connection \
                 to server at \"127.0.0.1\", port 1 failed: server does not support SSL, but SSL \
                 was required\n"
            ),
            "server does not support SSL, but SSL was required"
        );
    }
}
