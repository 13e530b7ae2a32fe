//! One tokio runtime for the whole process, and the bridge that runs the
//! async facade on it while the calling Python thread releases the GIL.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors::OrRaise;

/// The runtime and the process it was started in. A child forked after
/// the first call (multiprocessing's default on Linux, gunicorn or Celery
/// workers) inherited it without any of its threads, and every call there
/// waited forever; the child starts its own. The parent's copy is left
/// alone: dropping it would wait for threads the child does not have.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime, started on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    let process = std::process::id();
    let mut current = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((started_in, runtime)) = *current
        && started_in == process
    {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("carewatch")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the Carewatch runtime: {e}")))?;
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *current = Some((process, runtime));
    Ok(runtime)
}

/// The process an object was opened in: its store's connections and
/// threads belong to it, so a forked child must open its own.
#[derive(Debug, Clone, Copy)]
pub struct OpenedIn(u32);

impl OpenedIn {
    /// This process.
    pub fn here() -> Self {
        Self(std::process::id())
    }

    /// `RuntimeError` in any other process (a child forked after it was
    /// opened): it would wait forever there.
    pub fn check(self) -> PyResult<()> {
        if self.0 == std::process::id() {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "this Carewatch object was opened in another process (before a fork): \
                 open a new one in this process",
            ))
        }
    }
}

/// Runs `future` to completion with the GIL released, so other Python
/// threads run meanwhile; a core error becomes the matching exception.
pub fn block_on<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = carewatch_core::Result<T>> + Send,
{
    let runtime = runtime()?;
    py.detach(|| runtime.block_on(future)).or_raise(py)
}
