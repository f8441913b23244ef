//! Runs a full copy ([`crate::snapshot::copy_all`]) and follows its
//! events: records each table's and each chunk's progress (a chunk's start
//! before its destination transaction may commit, its end with its
//! snapshot point), keeps the live status and the copy meter, and reports
//! progress events.

use tokio_util::sync::CancellationToken;

use super::progress::CopyMeter;
use super::{CopyMoment, EngineError, Event, LiveStatus, Recorder, Reporter};
use crate::model::Lsn;
use crate::snapshot::{CopyEvent, CopyJob, copy_all};
use crate::state::{ChunkDone, TableChunks, TableStatus};

/// Who runs a copy, and what it records.
pub(super) struct CopyRun<'a> {
    /// Task name.
    pub task: &'a str,
    /// The state writer.
    pub recorder: &'a Recorder,
    /// The live status, when published.
    pub live: Option<&'a LiveStatus>,
    /// Where events go.
    pub report: &'a Reporter,
    /// The initial sync: table and chunk progress is recorded (a resumed
    /// sync keeps what it finds there). A table added to a streaming task
    /// records only that it was copied.
    pub initial: bool,
    /// Consistent point of the snapshot the copy reads (recorded per
    /// chunk); `None` without a stream.
    pub snapshot_lsn: Option<Lsn>,
}

impl CopyRun<'_> {
    fn publish(&self, meter: &CopyMeter, table: &str, moment: Option<CopyMoment>) {
        let progress = meter.get(table);
        let totals = meter.totals();
        if let Some(live) = self.live {
            live.task(self.task, |s| {
                s.tables.insert(table.to_owned(), progress.clone());
                s.copy = Some(totals.clone());
            });
        }
        if let Some(moment) = moment {
            (self.report)(Event::Copy {
                task: self.task.to_owned(),
                moment,
                table: table.to_owned(),
                progress,
                totals,
            });
        }
    }
}

/// Copies `job`, following its events until it ends.
///
/// # Errors
/// The copy's first failure, or a state write that failed.
pub(super) async fn run(
    run: &CopyRun<'_>,
    job: CopyJob,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let task = run.task;
    let step = |m: String| {
        (run.report)(Event::Step {
            task: task.to_owned(),
            message: m,
        })
    };
    let mut meter = CopyMeter::new();
    let recorded = run.recorder.task(task);
    for t in &job.tables {
        let name = t.route.source.to_string();
        meter.add(&name);
        if let (Some(r), Some(c)) = (
            job.resume.get(&t.route.source),
            recorded.as_ref().and_then(|rec| rec.chunks.get(&name)),
        ) {
            meter.kept(
                &name,
                r.split.chunks(),
                u32::try_from(r.done.len()).unwrap_or(u32::MAX),
                c.rows(),
                c.bytes(),
            );
        }
    }
    meter.start_clock();
    if let Some(live) = run.live {
        live.task(task, |s| {
            for (t, p) in meter.tables() {
                s.tables.insert(t.clone(), p.clone());
            }
            s.copy = Some(meter.totals());
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let copier = {
        let cancel = cancel.clone();
        tokio::spawn(async move { copy_all(job, tx, &cancel).await })
    };
    let recorder = run.recorder;
    while let Some(ev) = rx.recv().await {
        match ev {
            CopyEvent::Planned {
                table,
                split,
                estimated_rows,
                estimated_bytes,
            } => {
                let name = table.to_string();
                if run.initial
                    && let Some(split) = &split
                {
                    recorder.update(task, |r| {
                        let keep = r.chunks.get(&name).is_some_and(|c| &c.split == split);
                        if !keep {
                            r.chunks
                                .insert(name.clone(), TableChunks::new(split.clone()));
                        }
                    })?;
                }
                let t = meter.table(&name);
                t.estimated_rows = estimated_rows;
                t.estimated_bytes = Some(estimated_bytes);
                t.chunks = split.as_ref().map_or(0, crate::snapshot::Split::chunks);
                run.publish(&meter, &name, None);
            }
            CopyEvent::Started(t) => {
                let name = t.to_string();
                if run.initial {
                    recorder.update(task, |r| {
                        r.tables.insert(name.clone(), TableStatus::Copying);
                    })?;
                }
                meter.table(&name).state = "copying".into();
                run.publish(&meter, &name, Some(CopyMoment::Started));
            }
            CopyEvent::ColumnsLeftOut { table, columns } => {
                step(format!(
                    "{table}: the existing destination table lacks column(s) {}; their values are not copied (conflicting_tables = \"ignore\")",
                    columns.join(", ")
                ));
            }
            CopyEvent::Progress { table, rows, bytes } => {
                let name = table.to_string();
                meter.moved(&name, rows, bytes);
                run.publish(&meter, &name, Some(CopyMoment::Moved));
            }
            CopyEvent::ChunkStarted { table, chunk, ack } => {
                if run.initial {
                    let name = table.to_string();
                    recorder.update(task, |r| {
                        if let Some(c) = r.chunks.get_mut(&name) {
                            c.started.insert(chunk);
                        }
                    })?;
                }
                ack.recorded();
            }
            CopyEvent::ChunkCopied {
                table,
                chunk,
                chunks,
                rows,
                bytes,
            } => {
                let name = table.to_string();
                if run.initial {
                    recorder.update(task, |r| {
                        if let Some(c) = r.chunks.get_mut(&name) {
                            c.done.insert(
                                chunk,
                                ChunkDone {
                                    rows,
                                    bytes,
                                    snapshot_lsn: run.snapshot_lsn,
                                },
                            );
                        }
                    })?;
                    crate::failpoint::hit("copy.after_chunk_recorded");
                }
                let t = meter.table(&name);
                t.chunks = chunks;
                t.chunks_done += 1;
                run.publish(&meter, &name, Some(CopyMoment::ChunkCopied { chunk }));
            }
            CopyEvent::Copied { table, rows, bytes } => {
                let name = table.to_string();
                // A chunked table's totals include chunks kept from an
                // interrupted run.
                let (rows, bytes) = recorder
                    .task(task)
                    .and_then(|r| r.chunks.get(&name).map(|c| (c.rows(), c.bytes())))
                    .filter(|_| run.initial)
                    .unwrap_or((rows, bytes));
                recorder.update(task, |r| {
                    r.tables
                        .insert(name.clone(), TableStatus::Copied { rows, bytes });
                })?;
                if run.initial {
                    crate::failpoint::hit("initial.after_table_copied");
                }
                let t = meter.table(&name);
                t.state = "copied".into();
                t.rows = Some(rows);
                t.bytes = bytes;
                if t.chunks > 0 {
                    t.chunks_done = t.chunks;
                }
                run.publish(&meter, &name, Some(CopyMoment::Copied));
            }
        }
    }
    copier.await.expect("copy supervisor does not panic")?;
    Ok(())
}

/// The number of COPY workers: `--jobs`, else [`super::default_jobs`]
/// (reported as a step).
///
/// # Errors
/// When a server cannot be asked.
pub(super) async fn jobs(
    requested: Option<usize>,
    src: &crate::pg::Connected,
    dst: &crate::pg::Connected,
    step: impl Fn(String),
) -> Result<usize, EngineError> {
    if let Some(n) = requested {
        return Ok(n.max(1));
    }
    let (n, why) = super::default_jobs(src, dst).await?;
    step(format!("--jobs defaults to {n} ({why})"));
    Ok(n)
}
