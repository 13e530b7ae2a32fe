//! The envelope's cost over raw AES-256-GCM, measured interleaved.
//!
//! Criterion measures `seal` and raw encryption one after the other, and this
//! machine's drift between the two is as large as the gap being measured; see
//! [`carewatch_benches::interleaved`].
//!
//! ```sh
//! cargo run --release -p carewatch-benches --bin envelope_overhead
//! ```

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use carewatch_benches::interleaved::median_ns;
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::{self, Binding, Envelope, InstallationKey, KeyId, MessageKind};

const KEY_BYTES: [u8; 32] = *b"carewatch-bench-installation-key";
/// Only for the raw baseline, whose ciphertexts are thrown away.
const BASELINE_NONCE: [u8; 12] = [7; 12];
const ROUNDS: usize = 150;
const CALLS_PER_BLOCK: u32 = 20_000;

fn measure(name: &str, binding: &Binding<'_>, plaintext: &[u8]) {
    let key = InstallationKey::from_bytes(KeyId::new(1), KEY_BYTES);
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(KEY_BYTES));
    let nonce = Nonce::from(BASELINE_NONCE);
    // The raw cipher authenticates associated data of the same length.
    let associated_data = vec![0u8; seal::associated_data_len(binding)];
    let raw = |msg| Payload {
        msg,
        aad: &associated_data,
    };
    let sealed = seal::seal(&key, binding, plaintext);
    let ciphertext = cipher
        .encrypt(&nonce, raw(plaintext))
        .expect("AES-GCM encrypts a small message");

    let [seal_ns, encrypt_ns, open_ns, decrypt_ns] = median_ns(
        ROUNDS,
        CALLS_PER_BLOCK,
        [
            &mut || {
                drop(black_box(seal::seal(
                    &key,
                    black_box(binding),
                    black_box(plaintext),
                )))
            },
            &mut || {
                drop(black_box(
                    cipher.encrypt(&nonce, raw(black_box(plaintext))).ok(),
                ))
            },
            &mut || {
                let opened = Envelope::parse(black_box(&sealed))
                    .and_then(|envelope| envelope.open(&key, black_box(binding)));
                drop(black_box(opened.ok()));
            },
            &mut || {
                drop(black_box(
                    cipher.decrypt(&nonce, raw(black_box(&ciphertext))).ok(),
                ))
            },
        ],
    );
    let over = |envelope: f64, raw: f64| (envelope / raw - 1.0) * 100.0;
    println!(
        "{name}: seal {seal_ns:.1} ns vs encrypt {encrypt_ns:.1} ns ({:+.1}%), \
         open {open_ns:.1} ns vs decrypt {decrypt_ns:.1} ns ({:+.1}%)",
        over(seal_ns, encrypt_ns),
        over(open_ns, decrypt_ns)
    );
}

fn main() {
    let slc = Slc::new("M01-C01-123-45").expect("a valid SLC");
    let server =
        RecordingServerId::new("{6F9619FF-8B86-D011-B42D-00C04FC964FF}").expect("a valid id");
    let binding = |kind| Binding {
        slc: &slc,
        server: &server,
        kind,
        sequence: 42,
    };
    measure("heartbeat", &binding(MessageKind::Heartbeat), b"");
    measure(
        "status 4 KiB",
        &binding(MessageKind::StatusReport),
        &vec![0x5A; 4096],
    );
}
