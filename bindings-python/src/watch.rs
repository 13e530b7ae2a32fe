//! `carewatch.Watch`: a blocking iterator over a reseller's changes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use carewatch_core::feed::{Change, ChangeEvent};
use carewatch_core::{Carewatch, WatchStream};
use futures::StreamExt;
use futures::stream::Fuse;
use pyo3::prelude::*;

use crate::convert::duration;
use crate::errors::OrRaise;
use crate::records::change_event;
use crate::runtime::{OpenedIn, runtime};

/// How often a waiting watcher looks for Ctrl-C.
const SIGNAL_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Changes to a reseller's installations, in the change feed's order.
///
/// Iterate it (``for change in watch``: waits for each change) or call
/// ``next_event(timeout)``. Waiting releases the GIL and can be interrupted
/// with Ctrl-C. An error (``ResumeTooOld`` if the feed was pruned past a
/// resuming watcher) is raised once and ends the watch. ``close()`` (or
/// leaving a ``with`` block) ends it at once: a reseller has a bounded
/// number of live views open (``LimitReached`` beyond).
#[pyclass(frozen, module = "carewatch", name = "Watch")]
#[derive(Debug)]
pub struct Watch {
    // Fused: the core's stream must not be polled once it has ended (after
    // an error), and Python may keep calling `next_event`.
    // `None` once closed: the core's watcher (and its place among the
    // reseller's live views) is dropped then, not when Python collects this.
    stream: Mutex<Option<Fuse<WatchStream>>>,
    /// Only overview-line changes (`InstallationChange`).
    overview_only: bool,
    // Keeps the service, and so the change feed, alive while watched.
    _service: Carewatch,
    /// A forked child cannot wait on it.
    opened_in: OpenedIn,
}

impl Watch {
    pub fn new(
        service: Carewatch,
        stream: WatchStream,
        overview_only: bool,
        opened_in: OpenedIn,
    ) -> Self {
        Self {
            stream: Mutex::new(Some(stream.fuse())),
            overview_only,
            _service: service,
            opened_in,
        }
    }

    fn wait(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<Option<ChangeEvent>> {
        self.opened_in.check()?;
        let runtime = runtime()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = deadline.map_or(SIGNAL_CHECK_EVERY, |d| {
                d.saturating_duration_since(Instant::now())
                    .min(SIGNAL_CHECK_EVERY)
            });
            let received = py.detach(|| {
                let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
                let Some(stream) = stream.as_mut() else {
                    return Ok(None);
                };
                // The timer must be created inside the runtime.
                runtime.block_on(async { tokio::time::timeout(slice, stream.next()).await })
            });
            match received {
                Ok(Some(Ok(event))) => {
                    if !self.overview_only || matches!(event.change, Change::Health { .. }) {
                        return Ok(Some(event));
                    }
                    // Filtered out: still bounded by the deadline below.
                }
                // The stream ends after its error (e.g. `ResumeTooOld` when
                // the feed was pruned while catching up).
                Ok(Some(Err(e))) => return Err(e).or_raise(py),
                Ok(None) => return Ok(None),
                Err(_elapsed) => {}
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}

#[pymethods]
impl Watch {
    /// The next change, waiting at most ``timeout`` (a ``timedelta`` or
    /// seconds; ``None``: as long as it takes). ``None`` if none came in
    /// time, or the watch has ended.
    #[pyo3(signature = (timeout=None))]
    fn next_event<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let timeout = timeout.map(|t| duration(&t, "timeout")).transpose()?;
        self.wait(py, timeout)?
            .map(|event| change_event(py, event))
            .transpose()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.next_event(py, None)
    }

    /// Ends the watch now (again: nothing); ``next_event`` then gives ``None``.
    fn close(&self, py: Python<'_>) {
        // Without the GIL: a `next_event` in another thread holds the lock
        // for up to a slice of its wait.
        py.detach(|| {
            drop(self.stream.lock().unwrap_or_else(|e| e.into_inner()).take());
        });
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> &'static str {
        "<carewatch.Watch>"
    }
}
