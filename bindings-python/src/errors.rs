//! Core errors as the package's exceptions (`carewatch/_errors.py`): the
//! class is looked up by the error's stable code, so the Python module is
//! the one place that names them.

use std::error::Error as _;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

static BY_CODE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The exception for a core error, with the core's message (and, for storage
/// failures, the backend's reason).
pub fn to_py(py: Python<'_>, error: &carewatch_core::Error) -> PyErr {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    match class_for(py, error.code()) {
        Ok(class) => PyErr::from_type(class, message),
        Err(import_failed) => import_failed,
    }
}

fn class_for<'py>(py: Python<'py>, code: &str) -> PyResult<Bound<'py, PyType>> {
    let by_code = BY_CODE.get_or_try_init(py, || {
        let module = py.import("carewatch._errors")?;
        Ok::<_, PyErr>(module.getattr("BY_CODE")?.cast_into::<PyDict>()?.unbind())
    })?;
    match by_code.bind(py).get_item(code)? {
        Some(class) => Ok(class.cast_into::<PyType>()?),
        // A kind newer than the Python module: still a CarewatchError.
        None => Ok(py
            .import("carewatch._errors")?
            .getattr("CarewatchError")?
            .cast_into::<PyType>()?),
    }
}

/// `?` for core results inside Python-facing functions.
pub trait OrRaise<T> {
    /// The value, or the matching Carewatch exception.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for carewatch_core::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}
