//! Regression tests for the observations of issue 14 about a running
//! `carewatch serve` process: restarts that counted as missed heartbeats
//! (1), stops held up by idle connections (4), unfinished handshakes that
//! locked clients out (5), unthrottled bad tokens (6), streams that ended OK
//! at shutdown and untyped size refusals (8). Observation 3 (exact missed
//! counts after a restart) is checked by the fault scenario in faults/.

mod certificates;
mod connections;
mod refusals;
mod restart;
mod shutdown;
mod startup;
mod support;
