//! Nonces for sealing: 96 random bits per message.
//!
//! A nonce must never repeat under one key, and many processes seal under the
//! same installation key, so nonces are random rather than counted. Asking
//! the operating system for 12 bytes is a system call per message (about
//! 600 ns on a virtual machine, more than the whole AES-GCM seal), so each
//! thread draws them from its own ChaCha20 stream seeded from the operating
//! system instead.
//!
//! A `fork` copies that stream into the child, and parent and child would
//! then draw the same nonces. A handler registered with `pthread_atfork`
//! counts forks; a thread whose stream was seeded before the latest fork
//! reseeds before drawing. If the handler cannot be registered, every nonce
//! comes from the operating system, as before.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::keys::fill_random;

/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;

/// Forks this process has gone through, as seen by its current thread.
static FORKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's stream, and the fork count when it was seeded.
    static STREAM: RefCell<Option<(u64, ChaCha20Rng)>> = const { RefCell::new(None) };
}

/// A fresh random nonce.
pub(crate) fn fresh() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    if !fork_handler_registered() {
        fill_random(&mut nonce);
        return nonce;
    }
    let forks = FORKS.load(Ordering::Acquire);
    STREAM.with_borrow_mut(|stream| {
        let rng = match stream {
            Some((seeded_at, rng)) if *seeded_at == forks => rng,
            _ => &mut stream.insert((forks, seeded_stream())).1,
        };
        rng.fill_bytes(&mut nonce);
    });
    nonce
}

fn seeded_stream() -> ChaCha20Rng {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(seed.as_mut());
    ChaCha20Rng::from_seed(*seed)
}

/// Registers the fork counter once; whether it is in place.
fn fork_handler_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(register_fork_handler)
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn register_fork_handler() -> bool {
    extern "C" fn count_fork_in_child() {
        FORKS.fetch_add(1, Ordering::AcqRel);
    }
    // SAFETY: `pthread_atfork` only stores the function pointer. The handler
    // runs in the child right after `fork`, where POSIX allows only
    // async-signal-safe work: it does one atomic add, touching no lock and
    // no allocation.
    unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) == 0 }
}

/// Without `fork` there is nothing to guard against.
#[cfg(not(unix))]
fn register_fork_handler() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn nonces_do_not_repeat_within_or_across_threads() {
        let draw = || (0..10_000).map(|_| fresh()).collect::<Vec<_>>();
        let other_thread = std::thread::spawn(draw);
        let mut seen: HashSet<[u8; NONCE_LEN]> = draw().into_iter().collect();
        let other = other_thread.join().expect("the other thread draws nonces");
        assert_eq!(seen.len(), 10_000);
        seen.extend(other);
        assert_eq!(seen.len(), 20_000, "two threads drew the same nonce");
    }

    #[test]
    fn a_fork_makes_the_stream_reseed() {
        let _ = fresh();
        let before = STREAM.with_borrow(|s| s.as_ref().map(|(at, _)| *at));
        // What the child's handler does.
        FORKS.fetch_add(1, Ordering::AcqRel);
        let _ = fresh();
        let after = STREAM.with_borrow(|s| s.as_ref().map(|(at, _)| *at));
        assert_ne!(before, after, "the stream was not reseeded after a fork");
    }
}
