//! What a running apply publishes for `pgsync status` in another terminal:
//! `.pgsync/status.json`, rewritten atomically (mode 0600) every second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Live numbers of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// `precheck`, `snapshot`, `streaming`, `stopped`, `failed`, `done`.
    pub phase: String,
    /// Per table (`schema.name`): rows copied (when known) and bytes moved.
    pub tables: BTreeMap<String, TableProgress>,
    /// End LSN of the last source transaction applied.
    pub applied_lsn: Option<String>,
    /// Bytes of WAL the source has written beyond what was applied.
    pub lag_bytes: Option<u64>,
    /// Seconds between now and the commit of the last applied source
    /// transaction, when behind (0 when caught up).
    pub lag_seconds: Option<f64>,
    /// Source transactions applied by this run.
    pub transactions_applied: u64,
    /// Of those, transactions the source streamed while in progress
    /// (pgoutput protocol 2: larger than its `logical_decoding_work_mem`)
    /// and this run replayed from their spill files at commit.
    #[serde(default)]
    pub streamed_transactions: u64,
    /// Bytes of streamed transactions in progress on the source that are
    /// held in local spill files until they commit or abort.
    #[serde(default)]
    pub spill_bytes: u64,
    /// Streamed transactions in progress on the source (one spill file each).
    #[serde(default)]
    pub spill_transactions: u64,
    /// Changes this run did not apply because the table's `operations`
    /// leave their kind out, by kind (`insert`, `update`, `delete`,
    /// `truncate`, `ddl`).
    #[serde(default)]
    pub skipped: BTreeMap<String, u64>,
    /// The error that stopped the task.
    pub last_error: Option<String>,
    /// The whole full copy's progress, while and after it runs.
    #[serde(default)]
    pub copy: Option<CopyTotals>,
}

/// Copy progress of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// `pending`, `copying` or `copied`.
    pub state: String,
    /// Rows copied so far (while copying: COPY data messages, about one
    /// per row; exact once copied). Chunks kept from an interrupted run
    /// count.
    pub rows: Option<u64>,
    /// COPY data bytes moved (chunks kept from an interrupted run count).
    pub bytes: u64,
    /// Chunks the table is cut into (0: copied whole).
    #[serde(default)]
    pub chunks: u32,
    /// Chunks committed on the destination.
    #[serde(default)]
    pub chunks_done: u32,
    /// Estimated rows (the source's statistics; absent when never analyzed).
    #[serde(default)]
    pub estimated_rows: Option<u64>,
    /// Size on the source in bytes (`pg_table_size`: heap and TOAST), the
    /// estimate of how much there is to copy.
    #[serde(default)]
    pub estimated_bytes: Option<u64>,
}

/// The whole full copy of a task: what the progress bars and lines show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyTotals {
    /// Tables to copy.
    pub tables: usize,
    /// Tables copied.
    pub tables_copied: usize,
    /// Rows copied so far (see [`TableProgress::rows`]).
    pub rows: u64,
    /// COPY data bytes moved so far.
    pub bytes: u64,
    /// Estimated rows of all tables (absent when a table was never
    /// analyzed).
    pub estimated_rows: Option<u64>,
    /// Size of all tables on the source, in bytes (`pg_table_size`).
    pub estimated_bytes: u64,
    /// Rows per second moved by this run.
    pub rows_per_second: f64,
    /// COPY data bytes per second moved by this run.
    pub bytes_per_second: f64,
    /// How far the copy is, 0–100: each table's share (by size) times its
    /// fraction done (rows against the estimate, else chunks done).
    pub percent: f64,
    /// Estimated seconds left, from this run's pace.
    pub eta_seconds: Option<f64>,
    /// Seconds since this run's copy started.
    pub elapsed_seconds: f64,
}

/// The published document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusFile {
    /// pid of the running apply.
    pub pid: u32,
    /// RFC 3339-ish UTC time of the last write (seconds since the epoch).
    pub updated_unix: u64,
    /// Per task.
    pub tasks: BTreeMap<String, TaskStatus>,
    /// An error that stopped the whole apply.
    pub error: Option<String>,
    /// Peak resident memory of the apply process so far, in bytes
    /// (`VmHWM` of /proc/self/status; absent where that is not readable).
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

/// `VmHWM` (peak resident set size) of this process in bytes, from
/// /proc/self/status (Linux, proc(5)).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Shared live status of an apply.
#[derive(Clone)]
pub struct LiveStatus {
    inner: Arc<Mutex<StatusFile>>,
    dirty: Arc<std::sync::atomic::AtomicBool>,
    path: Option<PathBuf>,
}

impl LiveStatus {
    /// Empty status, published to `path` when given.
    pub fn new(path: Option<PathBuf>) -> LiveStatus {
        LiveStatus {
            inner: Arc::new(Mutex::new(StatusFile {
                pid: std::process::id(),
                ..Default::default()
            })),
            dirty: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            path,
        }
    }

    /// Changes one task's entry.
    pub fn task(&self, name: &str, f: impl FnOnce(&mut TaskStatus)) {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(g.tasks.entry(name.to_owned()).or_default());
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records an apply-wide error.
    pub fn set_error(&self, text: &str) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .error = Some(text.to_owned());
    }

    /// A copy of the document.
    pub fn snapshot(&self) -> StatusFile {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes the file now (no-op without a path).
    pub fn publish(&self) {
        let Some(path) = &self.path else { return };
        // One writer at a time: the publisher task and the final publish
        // share the temporary file beside `path`.
        static WRITING: Mutex<()> = Mutex::new(());
        let _writing = WRITING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut doc = self.snapshot();
        doc.peak_rss_bytes = peak_rss_bytes();
        doc.updated_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let bytes = serde_json::to_vec_pretty(&doc).expect("status serializes");
        if let Err(err) = crate::state::write_private(path, &bytes) {
            tracing::warn!(error = %err, "could not write status file");
        }
    }

    /// Publishes within 200 ms of a change (and at least every 5 s) until
    /// `stop` fires.
    pub fn spawn_publisher(&self, stop: CancellationToken) -> CancellationToken {
        let me = self.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            let mut last = std::time::Instant::now();
            me.publish();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
                if me.dirty.swap(false, std::sync::atomic::Ordering::Relaxed)
                    || last.elapsed() > std::time::Duration::from_secs(5)
                {
                    me.publish();
                    last = std::time::Instant::now();
                }
            }
        });
        token
    }
}

/// Reads a status file written by a running apply.
pub fn read_status_file(path: &Path) -> Option<StatusFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
