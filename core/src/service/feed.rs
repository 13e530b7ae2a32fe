//! Following the change feed: one reader per service reads the store's log
//! when woken (by this process's writes, by other nodes through the store's
//! signal, or by a slow poll) and fans events out in-process; each watcher
//! filters them by tenant, and falls back to reading the log itself when it
//! starts from an earlier event or falls behind. The log is the truth: a
//! lost wake-up costs latency, never an event.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};

use super::{Carewatch, Inner};
use crate::error::{Error, Result};
use crate::feed::{ChangeEvent, ChangeFilter, EventId};
use crate::ids::{ResellerId, Slc};
use crate::store::limits::MAX_WATCHERS_PER_RESELLER;

/// Events read from the store at once.
const PAGE: u32 = 500;
/// How often the reader looks at the log without a wake-up: bounds the
/// latency of a lost one (a process sharing a SQLite file, a NOTIFY lost
/// while the listener reconnected).
const POLL: Duration = Duration::from_millis(500);
/// Events the fan-out holds for slow watchers before they must re-read.
const FAN_OUT: usize = 4096;

/// The in-process side of the feed.
#[derive(Debug)]
pub(super) struct Feed {
    live: broadcast::Sender<Arc<ChangeEvent>>,
    wake: watch::Sender<u64>,
    reader: std::sync::Mutex<bool>,
    /// Open watchers per reseller ([`MAX_WATCHERS_PER_RESELLER`]).
    watchers: Arc<std::sync::Mutex<HashMap<ResellerId, usize>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            live: broadcast::channel(FAN_OUT).0,
            wake: watch::channel(0).0,
            reader: std::sync::Mutex::new(false),
            watchers: Arc::default(),
        }
    }
}

/// One open watcher of a reseller's, counted until dropped.
struct WatcherSlot {
    counts: Arc<std::sync::Mutex<HashMap<ResellerId, usize>>>,
    reseller: ResellerId,
}

impl WatcherSlot {
    /// A slot, or `LimitReached` when the reseller has as many as it may.
    fn take(
        counts: &Arc<std::sync::Mutex<HashMap<ResellerId, usize>>>,
        reseller: &ResellerId,
    ) -> Result<Self> {
        let mut open = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(reseller.clone()).or_default();
        if *count >= MAX_WATCHERS_PER_RESELLER {
            static REFUSED: std::sync::LazyLock<crate::log_limit::RateLimitedLog> =
                std::sync::LazyLock::new(Default::default);
            REFUSED.log("watchers", |refused| {
                tracing::warn!(
                    reseller = %reseller, refused,
                    "live views refused: a reseller has {MAX_WATCHERS_PER_RESELLER} open on this node"
                );
            });
            return Err(Error::LimitReached {
                what: "live views of this reseller on this node",
                limit: MAX_WATCHERS_PER_RESELLER,
            });
        }
        *count += 1;
        Ok(Self {
            counts: Arc::clone(counts),
            reseller: reseller.clone(),
        })
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.reseller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.reseller);
            }
        }
    }
}

impl Carewatch {
    /// Tells the feed reader this process may have appended events.
    pub(super) fn feed_written(&self) {
        self.inner.feed.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts the reader unless it runs; a new one reads after `head`, which
    /// the caller read after subscribing (so it misses nothing the reader
    /// sends from there).
    fn ensure_feed_reader(&self, head: EventId) {
        let mut running = self
            .inner
            .feed
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*running {
            *running = true;
            tokio::spawn(read_feed(Arc::downgrade(&self.inner), head));
        }
    }

    /// The newest change-feed event's id: where a page that shows the state
    /// as of now starts following (`watch(.., Some(id))`).
    pub async fn latest_change(&self) -> Result<EventId> {
        self.inner.store.latest_change().await
    }

    /// Follows changes to `reseller`'s installations (or to `only` one of
    /// them: `NotFound` if it is missing or another reseller's), from now, or
    /// from just after event `after` (every change since, in order; an
    /// `after` older than the feed keeps is refused with `ResumeTooOld`).
    /// `LimitReached` when the reseller has
    /// [`MAX_WATCHERS_PER_RESELLER`] watchers open on this node already (a
    /// watcher counts until it is dropped or ends with an error).
    pub async fn watch(
        &self,
        reseller: &ResellerId,
        only: Option<&Slc>,
        after: Option<EventId>,
    ) -> Result<WatchStream> {
        if let Some(slc) = only {
            self.require_owned(reseller, slc).await?;
        }
        let slot = WatcherSlot::take(&self.inner.feed.watchers, reseller)?;
        // Subscribe before reading where to start: every event after `head`
        // is sent after this subscription, so it arrives here.
        let live = self.inner.feed.live.subscribe();
        let head = self.inner.store.latest_change().await?;
        self.ensure_feed_reader(head);
        let (last, catching_up) = match after {
            Some(after) => {
                // Refuses a resume point the store no longer covers, now.
                self.inner.store.changes(after, 0).await?;
                (after, true)
            }
            None => (head, false),
        };
        let state = Watcher {
            carewatch: self.clone(),
            filter: ChangeFilter {
                reseller: reseller.clone(),
                slc: only.cloned(),
            },
            last,
            catching_up,
            ready: VecDeque::new(),
            live,
            _slot: slot,
        };
        // Fused: polling after the end (an error ends it) keeps answering None.
        Ok(WatchStream(Box::pin(
            futures::stream::unfold(Some(state), |state| async move {
                let mut state = state?;
                match state.next().await {
                    Ok(event) => Some((Ok(event), Some(state))),
                    // An error ends the stream.
                    Err(e) => Some((Err(e), None)),
                }
            })
            .fuse(),
        )))
    }
}

/// A watcher's changes, in feed order. Ends after an error.
pub struct WatchStream(Pin<Box<dyn Stream<Item = Result<ChangeEvent>> + Send>>);

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchStream")
    }
}

impl Stream for WatchStream {
    type Item = Result<ChangeEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

struct Watcher {
    carewatch: Carewatch,
    filter: ChangeFilter,
    /// The last event seen (anybody's): the next one must be `last + 1`.
    last: EventId,
    catching_up: bool,
    ready: VecDeque<ChangeEvent>,
    live: broadcast::Receiver<Arc<ChangeEvent>>,
    /// Counted as the reseller's until the watcher ends.
    _slot: WatcherSlot,
}

impl Watcher {
    async fn next(&mut self) -> Result<ChangeEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if self.catching_up {
                let page = self.carewatch.inner.store.changes(self.last, PAGE).await?;
                if page.is_empty() {
                    self.catching_up = false;
                }
                for event in page {
                    self.last = event.id;
                    if self.filter.matches(&event) {
                        self.ready.push_back(event);
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.id <= self.last => {}
                Ok(event) if event.id.0 == self.last.0 + 1 => {
                    self.last = event.id;
                    if self.filter.matches(&event) {
                        return Ok(ChangeEvent::clone(&event));
                    }
                }
                // Fell behind the fan-out, or joined between two pages the
                // reader sent: the log has the rest.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Error::ShuttingDown);
                }
            }
        }
    }
}

/// The reader: reads the log after the last event it sent, whenever woken
/// or every [`POLL`], and sends each event to the watchers. Ends when no
/// watcher is left or the service is dropped.
async fn read_feed(inner: Weak<Inner>, mut last: EventId) {
    let (mut local, mut remote) = {
        let Some(inner) = inner.upgrade() else { return };
        (inner.feed.wake.subscribe(), inner.store.change_signals())
    };
    loop {
        {
            let Some(inner) = inner.upgrade() else { return };
            if inner.feed.live.receiver_count() == 0 {
                let mut running = inner
                    .feed
                    .reader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // A watcher may have subscribed since the count was read.
                if inner.feed.live.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
            loop {
                match inner.store.changes(last, PAGE).await {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => {
                        for event in page {
                            last = event.id;
                            let _ = inner.feed.live.send(Arc::new(event));
                        }
                    }
                    Err(Error::ResumeTooOld { first_kept, .. }) => {
                        // Pruned under a reader that fell far behind: the
                        // watchers notice the gap and re-read (or are told).
                        last = EventId(first_kept.saturating_sub(1));
                    }
                    Err(e) => {
                        static FAILED: std::sync::LazyLock<crate::log_limit::RateLimitedLog> =
                            std::sync::LazyLock::new(Default::default);
                        FAILED.log("feed read failed", |failures| {
                            tracing::warn!(error = %e, failures, "reading the change feed failed; retrying");
                        });
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = local.changed() => {}
            _ = wait_remote(&mut remote) => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn wait_remote(remote: &mut Option<watch::Receiver<u64>>) {
    match remote {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *remote = None;
            }
        }
        None => std::future::pending().await,
    }
}
