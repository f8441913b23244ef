//! Failpoints: named places where a test can make pgsync die at once, as
//! `kill -9` would, to prove that every kill point resumes without losing or
//! duplicating a row.
//!
//! `PGSYNC_FAILPOINTS="name"` aborts the process the first time `name` is
//! reached; `"name@N"` the N-th time. Several are separated by commas.
//! Without the variable, [`hit`] costs one atomic load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::OnceLock;

fn armed() -> &'static Option<Mutex<HashMap<String, u64>>> {
    static ARMED: OnceLock<Option<Mutex<HashMap<String, u64>>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let spec = std::env::var("PGSYNC_FAILPOINTS").ok()?;
        let map = spec
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| match s.trim().split_once('@') {
                Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
                None => (s.trim().to_owned(), 1),
            })
            .collect();
        Some(Mutex::new(map))
    })
}

/// Marks failpoint `name`; aborts the process when it is armed and due.
pub fn hit(name: &str) {
    let Some(points) = armed() else { return };
    let mut points = points
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(left) = points.get_mut(name) {
        *left = left.saturating_sub(1);
        if *left == 0 {
            eprintln!("pgsync: failpoint {name} reached, aborting");
            std::process::abort();
        }
    }
}
