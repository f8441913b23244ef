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

/// One replication session to a source.
pub struct ReplicationSession {
    conn: PgReplicationConnection,
    endpoint: String,
}

impl ReplicationSession {
    /// Opens a `replication=database` session.
    ///
    /// # Errors
    /// [`SlotError`] (transient for network failures).
    pub async fn open(endpoint: &EndpointSpec) -> Result<ReplicationSession, SlotError> {
        let conninfo = super::replication_conninfo(endpoint);
        let conn = PgReplicationConnection::connect_async(&conninfo)
            .await
            .map_err(|e| convert("open replication connection", &endpoint.name, e))?;
        Ok(ReplicationSession {
            conn,
            endpoint: endpoint.name.clone(),
        })
    }

    /// Creates logical slot `slot` with the pgoutput plugin, exporting its
    /// snapshot. Run nothing else on this session until every COPY worker
    /// has imported the snapshot.
    ///
    /// # Errors
    /// [`SlotError`], e.g. when the slot exists or no slot is free.
    pub async fn create_slot(&mut self, slot: &str) -> Result<CreatedSlot, SlotError> {
        let sql = format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
            ident(slot)
        );
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

    /// `START_REPLICATION SLOT slot LOGICAL start (proto_version '1',
    /// publication_names '…', messages 'true')`. Protocol 1 makes the server
    /// send each transaction whole after its commit (spilling to its own disk
    /// past `logical_decoding_work_mem`), so pgsync applies changes as they
    /// arrive without holding a transaction in memory.
    ///
    /// # Errors
    /// [`SlotError`], e.g. when the slot is missing or active elsewhere.
    pub async fn start(
        &mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<(), SlotError> {
        // Publication names are generated lower-case `[a-z0-9_]` (see
        // `model::publication_name_for_task`), so the list needs no quoting.
        let options = [
            ("proto_version", "1"),
            ("publication_names", publication),
            ("messages", "true"),
        ];
        self.conn
            .start_replication_async(slot, start.0, &options)
            .await
            .map_err(|e| convert("start replication", &self.endpoint, e))
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
