//! One tokio runtime for the whole process, and the bridge that runs the
//! async facade on it while the calling Python thread releases the GIL.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors::OrRaise;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The shared runtime, started on first use.
pub fn runtime() -> PyResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("carewatch")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the Carewatch runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(e.clone()))
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
