//! Recorded state: what pgsync has created on either server, kept in sled
//! under `.pgsync/` (docs/state.md).
//!
//! Rules (the "record before relying" invariant): every object is recorded
//! *before* it is created on a server, so a crash at any point leaves a
//! record from which `apply` resumes and `destroy` cleans up (drops use
//! `if exists`). Passwords never enter the store: [`EndpointRecord`] has no
//! password field and [`crate::model::Secret`] has no `Serialize`.
//!
//! sled admits one process per directory; a second opener gets
//! [`StateError::Locked`] with the holder's pid, read from `.pgsync/pid`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{ConflictMode, EndpointSpec, Lsn, ObjectSelection, SyncTypes};

/// Version of the JSON layout under the `state` key; bumped on any
/// incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// Everything recorded, with a serial that grows by one on every write.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordedState {
    /// Layout version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Incremented by every [`StateStore::save`]; saved plans name the serial
    /// they were computed against.
    pub serial: u64,
    /// Tasks by name.
    pub tasks: BTreeMap<String, TaskRecord>,
}

/// Where an endpoint pointed, without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Role.
    pub user: String,
}

impl From<&EndpointSpec> for EndpointRecord {
    fn from(e: &EndpointSpec) -> Self {
        EndpointRecord {
            host: e.host.clone(),
            port: e.port,
            database: e.database.clone(),
            user: e.user.clone(),
        }
    }
}

impl std::fmt::Display for EndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPhase {
    /// Objects are being created, nothing copied yet.
    Precheck,
    /// The full copy runs under the slot's exported snapshot.
    Snapshot,
    /// Schema and copy are done; changes stream (or will, on the next apply).
    Streaming,
    /// Schema and/or full copy done, no incremental sync selected.
    Done,
    /// Stopped on an error that needs the user.
    Failed,
}

/// Copy progress of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TableStatus {
    /// Not copied yet.
    Pending,
    /// COPY under way (a crash here means the table is copied again).
    Copying,
    /// Copied under snapshot of the slot.
    Copied {
        /// Rows copied.
        rows: u64,
        /// Bytes of COPY data moved.
        bytes: u64,
    },
}

/// One task: what it selected and every object created for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task name.
    pub name: String,
    /// Source endpoint name and address.
    pub source_name: String,
    /// Source address.
    pub source: EndpointRecord,
    /// Destination endpoint name.
    pub destination_name: String,
    /// Destination address.
    pub destination: EndpointRecord,
    /// Phases selected.
    pub sync_types: SyncTypes,
    /// Conflict mode in force.
    pub conflicting_tables: ConflictMode,
    /// Retry windows in force.
    #[serde(default)]
    pub retry: crate::model::RetrySpec,
    /// Rate limits in force.
    #[serde(default)]
    pub throttle: crate::model::ThrottleSpec,
    /// Selection as applied.
    pub objects: Vec<ObjectSelection>,
    /// `mapping` blocks as applied.
    #[serde(default)]
    pub mappings: Vec<crate::model::Mapping>,
    /// `name_case` as applied.
    #[serde(default)]
    pub name_case: crate::model::NameCase,
    /// Publication the stream reads: pgsync's own `dts_pub_<task>`
    /// (recorded before it is created), or the task's `publication`
    /// attribute (see [`TaskRecord::publication_external`]).
    pub publication: Option<String>,
    /// `publication` was created outside pgsync (the task's `publication`
    /// attribute): never altered, and left in place by `destroy`. `false`
    /// (and in records written before the attribute existed): pgsync's own.
    #[serde(default)]
    pub publication_external: bool,
    /// Slot on the source (recorded before it is created).
    pub slot: Option<String>,
    /// LSN at which the slot's exported snapshot was taken; the stream
    /// starts there.
    pub consistent_lsn: Option<Lsn>,
    /// The heartbeat and sequence-state tables on the source
    /// (`public.dts_postgres_heartbeat`, `public.dts_sequence_state`) and
    /// the task's rows were (or may have been) created. `false` for a
    /// streaming task: heartbeat and sequence positions travel as logical
    /// messages (`pg_logical_emit_message`), nothing is created.
    pub heartbeat: bool,
    /// DDL capture (event triggers, `dts_ddl_command`) was (or may have
    /// been) installed on the source for this task.
    #[serde(default)]
    pub ddl_capture: bool,
    /// The progress table on the destination was (or may have been) created.
    pub progress: bool,
    /// Pre-data schema objects were created on the destination.
    pub schema_pre_done: bool,
    /// Post-data objects (keys, indexes, FKs, triggers) were created.
    pub schema_post_done: bool,
    /// Destination tables pgsync created (qualified `schema.name`, unquoted).
    pub created_tables: Vec<String>,
    /// Every destination object the pre-data schema created, as
    /// `pg_identify_object()` names it (type and quoted identity), recorded
    /// before that schema transaction commits; dropped by a replacement or
    /// `destroy --drop-destination`.
    #[serde(default)]
    pub created_objects: Vec<CreatedObject>,
    /// Tables copied alone after the task started streaming (a changed
    /// selection), each with the consistent point of its snapshot: the
    /// stream skips their changes in transactions committed before it.
    #[serde(default)]
    pub table_snapshots: Vec<(crate::model::QualifiedName, Lsn)>,
    /// Copy progress per table (`schema.name`).
    pub tables: BTreeMap<String, TableStatus>,
    /// Tables the copy cut into chunks (`schema.name`): the cut and the
    /// progress of each chunk. Absent in records written before chunked
    /// copies (every table was copied whole).
    #[serde(default)]
    pub chunks: BTreeMap<String, TableChunks>,
    /// Phase.
    pub phase: TaskPhase,
    /// Last error that stopped the task.
    pub last_error: Option<String>,
}

impl TaskRecord {
    /// A fresh record for `spec`, before anything exists.
    pub fn new(
        spec: &crate::model::TaskSpec,
        source: &EndpointSpec,
        destination: &EndpointSpec,
    ) -> TaskRecord {
        TaskRecord {
            name: spec.name.clone(),
            source_name: source.name.clone(),
            source: source.into(),
            destination_name: destination.name.clone(),
            destination: destination.into(),
            sync_types: spec.sync_types,
            conflicting_tables: spec.conflicting_tables,
            retry: spec.retry,
            throttle: spec.throttle,
            objects: spec.objects.clone(),
            mappings: spec.mappings.clone(),
            name_case: spec.name_case,
            publication: spec.publication.clone(),
            publication_external: spec.publication.is_some(),
            slot: None,
            consistent_lsn: None,
            heartbeat: false,
            ddl_capture: false,
            progress: false,
            schema_pre_done: false,
            schema_post_done: false,
            created_tables: Vec::new(),
            created_objects: Vec::new(),
            table_snapshots: Vec::new(),
            tables: BTreeMap::new(),
            chunks: BTreeMap::new(),
            phase: TaskPhase::Precheck,
            last_error: None,
        }
    }

    /// Whether the schema and the full copy are complete.
    pub fn initial_sync_done(&self) -> bool {
        matches!(self.phase, TaskPhase::Streaming | TaskPhase::Done)
    }
}

/// A table copied in chunks: how it was cut and how far each chunk got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChunks {
    /// The cut; kept across a resume, so chunk numbers keep their ranges.
    pub split: crate::snapshot::Split,
    /// Chunks whose destination transaction began, recorded before it
    /// commits: after a crash, every chunk that may hold rows on the
    /// destination is here or in `done`.
    #[serde(default)]
    pub started: BTreeSet<u32>,
    /// Chunks whose destination transaction committed.
    #[serde(default)]
    pub done: BTreeMap<u32, ChunkDone>,
}

impl TableChunks {
    /// A cut with no chunk begun.
    pub fn new(split: crate::snapshot::Split) -> TableChunks {
        TableChunks {
            split,
            started: BTreeSet::new(),
            done: BTreeMap::new(),
        }
    }

    /// Rows of the finished chunks.
    pub fn rows(&self) -> u64 {
        self.done.values().map(|d| d.rows).sum()
    }

    /// COPY bytes of the finished chunks.
    pub fn bytes(&self) -> u64 {
        self.done.values().map(|d| d.bytes).sum()
    }

    /// The snapshot point of every chunk, when every chunk is done under a
    /// recorded point.
    pub fn points(&self) -> Option<Vec<Lsn>> {
        (0..self.split.chunks())
            .map(|c| self.done.get(&c).and_then(|d| d.snapshot_lsn))
            .collect()
    }
}

/// A chunk whose rows are on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDone {
    /// Rows copied.
    pub rows: u64,
    /// COPY data bytes moved.
    pub bytes: u64,
    /// Consistent point of the snapshot it was read under (`None` for a
    /// task without a stream): the stream skips changes to its key range
    /// in transactions that committed before it.
    pub snapshot_lsn: Option<Lsn>,
}

/// One destination object pgsync created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedObject {
    /// `pg_identify_object().type`: `table`, `view`, `type`, `function`, …
    pub kind: String,
    /// `pg_identify_object().identity`: quoted, qualified, with argument
    /// types for functions; usable in `drop <kind> <identity>`.
    pub identity: String,
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process holds the sled lock.
    #[error("state is locked by another pgsync process{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The state directory.
        path: PathBuf,
        /// The holder, when its pid file is readable.
        pid: Option<u32>,
    },
    /// sled failed.
    #[error("state store at {path}")]
    Store {
        /// The state directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sled::Error,
    },
    /// The stored JSON does not parse.
    #[error(
        "state at {path} is unreadable (format version {found}, this pgsync reads {FORMAT_VERSION})"
    )]
    Format {
        /// The state directory.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
    /// Writing a file beside the store.
    #[error("writing {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The sled-backed store. Open it once per process; it holds the lock until
/// dropped.
pub struct StateStore {
    path: PathBuf,
    db: sled::Db,
}

const STATE_KEY: &[u8] = b"state";

impl StateStore {
    /// Opens (creating) the store in `dir`, mode 0700, and writes `dir/pid`.
    ///
    /// # Errors
    /// [`StateError::Locked`] when another process has it open.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        let io = |source| StateError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        set_mode(dir, 0o700).map_err(io)?;
        let db = match sled::Config::new().path(dir.join("db")).open() {
            Ok(db) => db,
            Err(err) if is_lock_error(&err) => {
                // The holder writes its pid right after taking the lock.
                let mut pid = None;
                for _ in 0..10 {
                    pid = std::fs::read_to_string(dir.join("pid"))
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    if pid.is_some() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                return Err(StateError::Locked {
                    path: dir.to_owned(),
                    pid,
                });
            }
            Err(source) => {
                return Err(StateError::Store {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        write_private(&dir.join("pid"), std::process::id().to_string().as_bytes()).map_err(io)?;
        Ok(StateStore {
            path: dir.to_owned(),
            db,
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The recorded state (empty when nothing was recorded yet).
    ///
    /// # Errors
    /// When the store fails or holds another layout version.
    pub fn load(&self) -> Result<RecordedState, StateError> {
        let raw = self
            .db
            .get(STATE_KEY)
            .map_err(|source| self.store_err(source))?;
        let Some(raw) = raw else {
            return Ok(RecordedState {
                version: FORMAT_VERSION,
                ..RecordedState::default()
            });
        };
        let state: RecordedState =
            serde_json::from_slice(&raw).map_err(|_| StateError::Format {
                path: self.path.clone(),
                found: serde_json::from_slice::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("version")?.as_u64())
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
            })?;
        if state.version != FORMAT_VERSION {
            return Err(StateError::Format {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(state)
    }

    /// Writes `state` with its serial incremented, and flushes to disk before
    /// returning (so a crash afterwards keeps it).
    ///
    /// # Errors
    /// When sled fails.
    pub fn save(&self, state: &mut RecordedState) -> Result<(), StateError> {
        state.serial += 1;
        state.version = FORMAT_VERSION;
        let bytes = serde_json::to_vec(state).expect("recorded state serializes");
        self.db
            .insert(STATE_KEY, bytes)
            .map_err(|source| self.store_err(source))?;
        self.db.flush().map_err(|source| self.store_err(source))?;
        Ok(())
    }

    fn store_err(&self, source: sled::Error) -> StateError {
        StateError::Store {
            path: self.path.clone(),
            source,
        }
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.join("pid"));
    }
}

fn is_lock_error(err: &sled::Error) -> bool {
    match err {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("lock")
                || io.raw_os_error() == Some(11)
        }
        _ => false,
    }
}

/// Writes `bytes` to `path` atomically (temp file + rename), mode 0600.
///
/// # Errors
/// Any I/O error.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        set_mode(&tmp, 0o600)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_records_sum_their_chunks_and_name_every_point() {
        let mut c = TableChunks::new(crate::snapshot::Split::Key {
            column: "id".into(),
            bounds: vec![10],
            resumable: true,
        });
        assert_eq!(c.points(), None);
        for (i, lsn) in [(0, 5), (1, 9)] {
            c.done.insert(
                i,
                ChunkDone {
                    rows: 3,
                    bytes: 7,
                    snapshot_lsn: Some(Lsn(lsn)),
                },
            );
        }
        assert_eq!(c.points(), Some(vec![Lsn(5), Lsn(9)]));
        assert_eq!((c.rows(), c.bytes()), (6, 14));
        // `started` and `done` may be absent.
        let json = r#"{"split":{"by":"pages","bounds":[4]}}"#;
        let c: TableChunks = serde_json::from_str(json).unwrap();
        assert_eq!(c.split.chunks(), 2);
    }

    #[test]
    fn save_increments_serial_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let mut st = store.load().unwrap();
            assert_eq!(st.serial, 0);
            store.save(&mut st).unwrap();
            store.save(&mut st).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap().serial, 2);
    }

    #[test]
    fn state_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _store = StateStore::open(&dir.path().join("s")).unwrap();
        let mode = std::fs::metadata(dir.path().join("s"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(dir.path().join("s/pid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[cfg(test)]
mod lock_tests {
    #[test]
    fn a_second_opener_gets_a_clear_lock_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = super::StateStore::open(dir.path()).unwrap();
        let err = match super::StateStore::open(dir.path()) {
            Err(e) => e,
            Ok(_) => panic!("second open succeeded"),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("state is locked by another pgsync process (pid "),
            "{text}"
        );
    }
}
