//! Sealing and opening recording-server messages, beside raw AES-256-GCM on
//! the same key, plaintext and associated-data length: the gap is what the
//! envelope costs (nonce, associated data built per call, copies).
//! `aes_gcm_decrypt_in_envelope` decrypts the ciphertext where `open` finds it,
//! after the 17-byte header, which is not 16-byte aligned.
//!
//! `unwrap_key_and_open` is what ingest does per message: unwrap the stored
//! installation key under the master key (which builds a new cipher, key
//! schedule included), then open.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::seal::{
    self, Binding, Envelope, InstallationKey, KeyId, MasterKey, MessageKind,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const KEY_BYTES: [u8; 32] = *b"carewatch-bench-installation-key";
const MASTER_KEY_BYTES: [u8; 32] = *b"carewatch-bench-master-key-bytes";
/// Only for the raw baseline, whose ciphertexts are thrown away: reusing a
/// nonce is safe only because nothing encrypted here is ever kept or sent.
const BASELINE_NONCE: [u8; 12] = [7; 12];
const STATUS_PAYLOAD_BYTES: usize = 4 * 1024;

fn sealing(c: &mut Criterion) {
    let slc = Slc::new("M01-C01-123-45").expect("valid SLC");
    let server =
        RecordingServerId::new("{6F9619FF-8B86-D011-B42D-00C04FC964FF}").expect("valid server id");
    // The content does not matter to AES-GCM, only the length.
    let status_payload = vec![0x5A; STATUS_PAYLOAD_BYTES];
    let message = |kind| Binding {
        slc: &slc,
        server: &server,
        kind,
        sequence: 42,
    };

    // An empty plaintext makes bytes per second meaningless: count messages.
    bench_message(
        c,
        "sealing/heartbeat",
        &message(MessageKind::Heartbeat),
        b"",
        Throughput::Elements(1),
    );
    bench_message(
        c,
        "sealing/status_4kib",
        &message(MessageKind::StatusReport),
        &status_payload,
        Throughput::Bytes(STATUS_PAYLOAD_BYTES as u64),
    );
}

fn bench_message(
    c: &mut Criterion,
    group_name: &str,
    binding: &Binding<'_>,
    plaintext: &[u8],
    throughput: Throughput,
) {
    let key = InstallationKey::from_bytes(KeyId::new(1), KEY_BYTES);
    let master_key = MasterKey::from_bytes(MASTER_KEY_BYTES);
    let stored_key = master_key.wrap(binding.slc, &key);
    let sealed = seal::seal(&key, binding, plaintext);

    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(KEY_BYTES));
    let nonce = Nonce::from(BASELINE_NONCE);
    let associated_data = vec![0u8; seal::associated_data_len(binding)];
    let ciphertext = cipher
        .encrypt(&nonce, payload(plaintext, &associated_data))
        .expect("encrypts");

    let mut group = c.benchmark_group(group_name);
    group.throughput(throughput);
    group.bench_function("seal", |b| {
        b.iter(|| seal::seal(&key, black_box(binding), black_box(plaintext)));
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            Envelope::parse(black_box(&sealed))
                .and_then(|envelope| envelope.open(&key, black_box(binding)))
                .expect("opens")
        });
    });
    group.bench_function("unwrap_key_and_open", |b| {
        b.iter(|| {
            let key = master_key
                .unwrap_key(binding.slc, black_box(&stored_key))
                .expect("unwraps");
            seal::open(&key, black_box(binding), black_box(&sealed)).expect("opens")
        });
    });
    group.bench_function("aes_gcm_encrypt", |b| {
        b.iter(|| {
            cipher
                .encrypt(&nonce, payload(black_box(plaintext), &associated_data))
                .expect("encrypts")
        });
    });
    group.bench_function("aes_gcm_decrypt", |b| {
        b.iter(|| {
            cipher
                .decrypt(&nonce, payload(black_box(&ciphertext), &associated_data))
                .expect("decrypts")
        });
    });
    // The same bytes where `open` finds them: inside the envelope, after its
    // 17-byte header.
    let mut enveloped = vec![0u8; seal::HEADER_LEN];
    enveloped.extend_from_slice(&ciphertext);
    group.bench_function("aes_gcm_decrypt_in_envelope", |b| {
        b.iter(|| {
            let in_envelope = &black_box(&enveloped)[seal::HEADER_LEN..];
            cipher
                .decrypt(&nonce, payload(in_envelope, &associated_data))
                .expect("decrypts")
        });
    });
    group.finish();
}

fn payload<'a>(msg: &'a [u8], aad: &'a [u8]) -> Payload<'a, 'a> {
    Payload { msg, aad }
}

criterion_group!(benches, sealing);
criterion_main!(benches);
