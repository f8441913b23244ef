//! The single writer of recorded state, shared by the engine's tasks.

use std::sync::{Arc, Mutex};

use crate::state::{RecordedState, StateError, StateStore, TaskRecord};

/// The state store and its in-memory copy; every change is saved (and
/// flushed) before the call returns.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<(StateStore, RecordedState)>>,
}

impl Recorder {
    /// Loads the state of `store`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn new(store: StateStore) -> Result<Recorder, StateError> {
        let state = store.load()?;
        Ok(Recorder {
            inner: Arc::new(Mutex::new((store, state))),
        })
    }

    /// A copy of the whole recorded state.
    pub fn state(&self) -> RecordedState {
        self.lock().1.clone()
    }

    /// A copy of one task's record.
    pub fn task(&self, name: &str) -> Option<TaskRecord> {
        self.lock().1.tasks.get(name).cloned()
    }

    /// Inserts or replaces a task record and saves.
    ///
    /// # Errors
    /// When saving fails.
    pub fn put(&self, record: TaskRecord) -> Result<(), StateError> {
        let mut g = self.lock();
        let (store, state) = &mut *g;
        state.tasks.insert(record.name.clone(), record);
        store.save(state)
    }

    /// Changes a task record in place and saves. A missing task is a no-op.
    ///
    /// # Errors
    /// When saving fails.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut TaskRecord)) -> Result<(), StateError> {
        let mut g = self.lock();
        let (store, state) = &mut *g;
        if let Some(r) = state.tasks.get_mut(name) {
            f(r);
            store.save(state)?;
        }
        Ok(())
    }

    /// Removes a task record and saves.
    ///
    /// # Errors
    /// When saving fails.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let mut g = self.lock();
        let (store, state) = &mut *g;
        state.tasks.remove(name);
        store.save(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (StateStore, RecordedState)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
