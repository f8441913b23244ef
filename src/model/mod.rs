//! The shared vocabulary: names, LSNs, secrets and the desired state that
//! configuration produces. Pure: no I/O, no tokio.

mod desired;
mod lsn;
mod names;
mod route;
mod secret;

pub use desired::{
    ConflictMode, DesiredState, EndpointSpec, ObjectSelection, RetrySpec, SslMode, SyncTypes,
    TaskSpec, ThrottleSpec, TlsFiles, glob_matches,
};
pub use lsn::{Lsn, LsnParseError};
pub use names::{
    QualifiedName, publication_name_for_task, slot_name_for_task, temporary_slot_name_for_task,
};
pub use route::{Mapping, NameCase, Operations, Route, TableOptions, glob_captures};
pub use secret::Secret;

/// `"1 table"`, `"3 tables"`: a count with its noun, for messages (every
/// noun pgsync counts takes a plain `s`).
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
