//! A stream that ends when Carewatch stops receiving.
//!
//! `StreamExt::take_until(carewatch.stopping())` would do, but it polls the
//! stop signal on every poll of the stream, and a busy ingest stream is
//! polled about five times per message: the signal's lock each time cost
//! about 1,100 instructions per heartbeat (2% of the server's). Here the
//! flag is read before each poll (a shared read) and the signal is polled
//! only when the stream waits and the task has not registered with it yet.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use carewatch_core::Carewatch;
use futures::Stream;

/// `inner` until `carewatch` stops receiving (see the module's note).
pub(crate) struct UntilStopped<S> {
    inner: Pin<Box<S>>,
    carewatch: Carewatch,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The waker the stop signal holds: polling the signal again for the
    /// same task would only take its lock to store the same waker.
    registered: Option<Waker>,
    ended: bool,
}

impl<S> UntilStopped<S> {
    pub(crate) fn new(inner: S, carewatch: &Carewatch) -> Self {
        Self {
            inner: Box::pin(inner),
            carewatch: carewatch.clone(),
            // Outside tokio's budget: a budgeted signal may answer Pending
            // without registering the task, which `registered` would then
            // take for a registration (an idle stream would outlive the stop).
            stop: Box::pin(tokio::task::unconstrained(carewatch.stopping())),
            registered: None,
            ended: false,
        }
    }
}

impl<S: Stream> Stream for UntilStopped<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if this.ended || this.carewatch.is_stopping() {
            this.ended = true;
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => {}
            Poll::Ready(None) => {
                this.ended = true;
                return Poll::Ready(None);
            }
            ready => return ready,
        }
        let registered = this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if !registered {
            if this.stop.as_mut().poll(cx).is_ready() {
                this.ended = true;
                return Poll::Ready(None);
            }
            this.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
