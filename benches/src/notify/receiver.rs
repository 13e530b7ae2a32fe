//! [`ReceiverThread`]: the benchmark's webhook receiver on a thread (and
//! runtime) of its own, so that what it costs (HTTP, TLS) can be read apart
//! from the generator's CPU time. It stands for the reseller's server,
//! which in a deployment runs elsewhere.

use std::ops::Deref;
use std::thread::JoinHandle;

use carewatch_notify::testing::http::Receiver;
use tokio::sync::oneshot;

use crate::server::BoxError;

/// A receiver served by a thread of its own; stops when dropped.
#[derive(Debug)]
pub struct ReceiverThread {
    receiver: Option<Receiver>,
    tid: Option<u32>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ReceiverThread {
    /// Starts a plain HTTP receiver, or an HTTPS one.
    pub fn start(https: bool) -> Result<Self, BoxError> {
        let (started, receiving) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let receiver = if https {
                        Receiver::start_tls().await
                    } else {
                        Receiver::start().await
                    };
                    let _ = started.send(Ok((receiver, this_thread_id())));
                    let _ = stopped.await;
                });
            })?;
        let (receiver, tid) = receiving.recv()??;
        Ok(Self {
            receiver: Some(receiver),
            tid,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Its thread's id (Linux), for [`crate::server::thread_cpu_time`].
    pub fn thread_id(&self) -> Option<u32> {
        self.tid
    }
}

impl Deref for ReceiverThread {
    type Target = Receiver;

    fn deref(&self) -> &Receiver {
        self.receiver
            .as_ref()
            .unwrap_or_else(|| unreachable!("the receiver lives until drop"))
    }
}

impl Drop for ReceiverThread {
    fn drop(&mut self) {
        // The receiver first (it ends its connections), then its runtime.
        drop(self.receiver.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The calling thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn this_thread_id() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}
