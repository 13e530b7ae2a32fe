//! The compiled half of the `carewatch` Python package (`carewatch._carewatch`).
//!
//! Thin by design: every rule lives in `carewatch-core`. This crate turns
//! Python values into core types and back (`convert`), core errors into the
//! package's exceptions (`errors`), and runs the async facade on one shared
//! tokio runtime with the GIL released (`runtime`). The result classes and
//! exceptions themselves are plain Python (`carewatch/_types.py`,
//! `carewatch/_errors.py`), so they are idiomatic dataclasses and enums.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

mod convert;
mod errors;
mod functions;
mod records;
mod runtime;
mod service;
mod watch;

#[pymodule]
fn _carewatch(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The core's list, so a pytest test fails when a new kind of error has
    // no exception class in `carewatch/_errors.py` yet.
    module.add(
        "ERROR_CODES",
        PyTuple::new(module.py(), carewatch_core::Error::CODES)?,
    )?;
    module.add_class::<service::Carewatch>()?;
    module.add_class::<watch::Watch>()?;
    for function in [
        wrap_pyfunction!(functions::evaluate, module)?,
        wrap_pyfunction!(functions::seal_heartbeat, module)?,
        wrap_pyfunction!(functions::seal_status, module)?,
        wrap_pyfunction!(functions::seal_message, module)?,
        wrap_pyfunction!(functions::open_message, module)?,
        wrap_pyfunction!(functions::generate_master_key, module)?,
        wrap_pyfunction!(functions::generate_installation_key, module)?,
        wrap_pyfunction!(functions::condition_catalogue, module)?,
    ] {
        module.add_function(function)?;
    }
    Ok(())
}
