use proptest::prelude::*;

use super::payload::{decode_status, encode_status};
use super::*;
use crate::catalogue::ConditionCode;
use crate::condition::{ReportedCondition, StatusSnapshot};

fn slc(s: &str) -> Slc {
    Slc::new(s).unwrap()
}

fn server(s: &str) -> RecordingServerId {
    RecordingServerId::new(s).unwrap()
}

struct Fixture {
    key: InstallationKey,
    slc: Slc,
    server: RecordingServerId,
}

impl Fixture {
    fn new() -> Self {
        Self {
            key: InstallationKey::generate(KeyId::new(7)),
            slc: slc("M01-C01-0001"),
            server: server("rs-1"),
        }
    }

    fn binding(&self, kind: MessageKind, sequence: u64) -> Binding<'_> {
        Binding {
            slc: &self.slc,
            server: &self.server,
            kind,
            sequence,
        }
    }
}

#[test]
fn round_trip_heartbeat_and_status() {
    let f = Fixture::new();
    let hb = seal(&f.key, &f.binding(MessageKind::Heartbeat, 1), b"");
    assert_eq!(hb.len(), HEADER_LEN + TAG_LEN);
    assert_eq!(
        open(&f.key, &f.binding(MessageKind::Heartbeat, 1), &hb).unwrap(),
        b""
    );
    let report = b"payload bytes";
    let sealed = seal(&f.key, &f.binding(MessageKind::StatusReport, 2), report);
    assert_eq!(Envelope::parse(&sealed).unwrap().key_id(), KeyId::new(7));
    assert_eq!(
        open(&f.key, &f.binding(MessageKind::StatusReport, 2), &sealed).unwrap(),
        report
    );
}

#[test]
fn nonces_differ_between_seals_of_the_same_message() {
    let f = Fixture::new();
    let b = f.binding(MessageKind::Heartbeat, 1);
    assert_ne!(seal(&f.key, &b, b""), seal(&f.key, &b, b""));
}

#[test]
fn flipping_any_single_byte_is_refused() {
    let f = Fixture::new();
    let b = f.binding(MessageKind::StatusReport, 9);
    let sealed = seal(&f.key, &b, b"some status");
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1 << bit;
            let err = open(&f.key, &b, &tampered).unwrap_err();
            let expected = match i {
                0 => matches!(err, SealError::UnsupportedVersion(_)),
                1..=4 => matches!(err, SealError::KeyMismatch { .. }),
                _ => err == SealError::AuthenticationFailed,
            };
            assert!(expected, "byte {i} bit {bit}: {err:?}");
        }
    }
}

#[test]
fn truncation_is_refused() {
    let f = Fixture::new();
    let b = f.binding(MessageKind::StatusReport, 9);
    let sealed = seal(&f.key, &b, b"some status");
    for len in 0..sealed.len() {
        let err = open(&f.key, &b, &sealed[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                SealError::Truncated { .. } | SealError::AuthenticationFailed
            ),
            "{len}: {err:?}"
        );
    }
}

#[test]
fn a_wrong_key_is_refused() {
    let f = Fixture::new();
    let b = f.binding(MessageKind::Heartbeat, 1);
    let sealed = seal(&f.key, &b, b"");
    let same_id_other_bytes = InstallationKey::generate(KeyId::new(7));
    assert_eq!(
        open(&same_id_other_bytes, &b, &sealed).unwrap_err(),
        SealError::AuthenticationFailed
    );
    let other_id = InstallationKey::generate(KeyId::new(8));
    assert_eq!(
        open(&other_id, &b, &sealed).unwrap_err(),
        SealError::KeyMismatch {
            sealed_with: KeyId::new(7),
            given: KeyId::new(8)
        }
    );
    // Said as such: it read "key #7 is not an active key of this
    // installation", which the caller's key #8 could not tell.
    assert_eq!(
        open(&other_id, &b, &sealed).unwrap_err().to_string(),
        "sealed with key #7, not with the key given (#8)"
    );
}

#[test]
fn each_bound_field_is_checked() {
    let f = Fixture::new();
    let sealed = seal(&f.key, &f.binding(MessageKind::StatusReport, 5), b"x");
    let other_slc = slc("M01-C01-0002");
    let other_server = server("rs-2");
    let mismatches = [
        Binding {
            slc: &other_slc,
            ..f.binding(MessageKind::StatusReport, 5)
        },
        Binding {
            server: &other_server,
            ..f.binding(MessageKind::StatusReport, 5)
        },
        f.binding(MessageKind::Heartbeat, 5),
        f.binding(MessageKind::StatusReport, 6),
    ];
    for (i, binding) in mismatches.iter().enumerate() {
        assert_eq!(
            open(&f.key, binding, &sealed).unwrap_err(),
            SealError::AuthenticationFailed,
            "field {i}"
        );
    }
}

#[test]
fn installation_key_text_round_trip() {
    let key = InstallationKey::generate(KeyId::new(3));
    let back = InstallationKey::from_text(&key.to_text()).unwrap();
    let f = Fixture::new();
    let b = Binding {
        slc: &f.slc,
        server: &f.server,
        kind: MessageKind::Heartbeat,
        sequence: 1,
    };
    assert_eq!(open(&back, &b, &seal(&key, &b, b"")).unwrap(), b"");
    assert!(
        !format!("{key:?}").contains(&key.to_text()[8..]),
        "Debug must not show the key"
    );
    for bad in ["", "cwk1:x:00", "cwk1:1:zz", "cwk2:1:00"] {
        assert!(InstallationKey::from_text(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn master_key_wraps_bound_to_installation() {
    let master = MasterKey::generate();
    let key = InstallationKey::generate(KeyId::new(1));
    let a = slc("M01-C01-0001");
    let wrapped = master.wrap(&a, &key);
    assert_eq!(
        master.unwrap_key(&a, &wrapped).unwrap().to_text(),
        key.to_text()
    );
    assert!(
        master.unwrap_key(&slc("M01-C01-0002"), &wrapped).is_err(),
        "moved to another installation"
    );
    assert!(
        MasterKey::generate().unwrap_key(&a, &wrapped).is_err(),
        "another master key"
    );
    let again = MasterKey::from_hex(&master.to_hex()).unwrap();
    assert!(again.unwrap_key(&a, &wrapped).is_ok());
    assert!(
        !wrapped
            .sealed
            .windows(8)
            .any(|w| key.to_text().as_bytes().windows(8).any(|k| k == w))
    );
}

fn snapshot_strategy() -> impl Strategy<Value = StatusSnapshot> {
    let code = prop_oneof![
        prop::sample::select(
            ConditionCode::known()
                .filter(|c| *c != ConditionCode::ServerUnavailable)
                .collect::<Vec<_>>()
        ),
        "[A-Z][A-Z0-9_]{0,20}".prop_map(|c| ConditionCode::parse(&c).unwrap()),
    ];
    prop::collection::vec((code, "[ -~]{0,40}", "\\PC{0,60}"), 0..20).prop_map(|items| {
        let mut seen = std::collections::HashSet::new();
        let conditions = items
            .into_iter()
            .filter_map(|(code, subject, detail)| {
                ReportedCondition::new(code, &subject, &detail).ok()
            })
            .filter(|c| seen.insert(c.key()))
            .collect();
        StatusSnapshot::new(conditions).unwrap()
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), seq in any::<u64>()) {
        let f = Fixture::new();
        let b = f.binding(MessageKind::StatusReport, seq);
        prop_assert!(open(&f.key, &b, &bytes).is_err());
        let _ = decode_status(&bytes);
    }

    #[test]
    fn forged_envelopes_with_a_valid_header_never_open(tail in prop::collection::vec(any::<u8>(), 28..200)) {
        let f = Fixture::new();
        let mut bytes = vec![ENVELOPE_VERSION, 0, 0, 0, 7];
        bytes.extend(tail);
        prop_assert_eq!(open(&f.key, &f.binding(MessageKind::Heartbeat, 1), &bytes), Err(SealError::AuthenticationFailed));
    }

    #[test]
    fn status_payload_round_trips(snapshot in snapshot_strategy()) {
        prop_assert_eq!(decode_status(&encode_status(&snapshot)).unwrap(), snapshot);
    }

    #[test]
    fn truncated_status_payloads_are_malformed(snapshot in snapshot_strategy(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_status(&snapshot);
        let cut = cut.index(bytes.len());
        let err = decode_status(&bytes[..cut]).unwrap_err();
        prop_assert!(matches!(err, crate::Error::Malformed { .. }), "{err}");
    }
}

#[test]
fn status_payload_refuses_trailing_bytes_and_derived_codes() {
    let mut bytes = encode_status(&StatusSnapshot::all_clear());
    bytes.push(0);
    assert!(
        decode_status(&bytes)
            .unwrap_err()
            .to_string()
            .contains("unexpected bytes")
    );
    let mut forged = vec![STATUS_VERSION_FOR_TEST, 0, 1, 18];
    forged.extend_from_slice(b"SERVER_UNAVAILABLE");
    forged.extend_from_slice(&[0, 0, 0, 0]);
    let err = decode_status(&forged).unwrap_err();
    assert!(err.to_string().contains("derived"), "{err}");
}

const STATUS_VERSION_FOR_TEST: u8 = super::payload::STATUS_FORMAT_VERSION;

#[test]
fn associated_data_len_is_the_length_sealed_with() {
    let slc = Slc::new("M01-C01-123-45").expect("valid SLC");
    for server in ["a", "{6F9619FF-8B86-D011-B42D-00C04FC964FF}"] {
        let server = RecordingServerId::new(server).expect("valid server id");
        let binding = Binding {
            slc: &slc,
            server: &server,
            kind: MessageKind::Heartbeat,
            sequence: 7,
        };
        let mut buffer = [0u8; MAX_AAD_LEN];
        let built = associated_data(&mut buffer, KeyId::new(3), &binding).len();
        assert_eq!(associated_data_len(&binding), built, "for server {server}");
    }
}

/// The largest valid report: the most conditions, every field at its longest.
fn largest_report() -> StatusSnapshot {
    use crate::condition::{MAX_CONDITIONS_PER_REPORT, MAX_DETAIL_BYTES, MAX_SUBJECT_BYTES};
    let code = ConditionCode::parse(&"X".repeat(ConditionCode::MAX_LEN)).unwrap();
    let detail = "d".repeat(MAX_DETAIL_BYTES);
    let conditions = (0..MAX_CONDITIONS_PER_REPORT)
        .map(|i| {
            let subject = format!("{i:0width$}", width = MAX_SUBJECT_BYTES);
            ReportedCondition::new(code.clone(), &subject, &detail).unwrap()
        })
        .collect();
    StatusSnapshot::new(conditions).unwrap()
}

#[test]
fn the_largest_valid_report_is_exactly_the_limit() {
    let f = Fixture::new();
    let snapshot = largest_report();
    let payload = encode_status(&snapshot);
    assert_eq!(payload.len(), payload::MAX_STATUS_PAYLOAD_BYTES);
    assert_eq!(payload::MAX_STATUS_PAYLOAD_BYTES, 1_381_379);
    let b = f.binding(MessageKind::StatusReport, 1);
    let sealed = seal(&f.key, &b, &payload);
    assert_eq!(sealed.len(), MAX_SEALED_MESSAGE_BYTES);
    assert_eq!(MAX_SEALED_MESSAGE_BYTES, 1_381_412);
    let opened = open(&f.key, &b, &sealed).unwrap();
    assert_eq!(decode_status(&opened).unwrap(), snapshot);
}

#[test]
fn lengths_over_the_limits_are_refused_before_trimming() {
    // A subject of 256 bytes after trimming, but 257 as sent: refused, so
    // white space cannot carry a payload past the limit.
    let mut bytes = vec![STATUS_VERSION_FOR_TEST, 0, 1, 1, b'X', 1, 1];
    bytes.push(b' ');
    bytes.extend_from_slice(&[b's'; 256]);
    bytes.extend_from_slice(&[0, 0]);
    let err = decode_status(&bytes).unwrap_err().to_string();
    assert!(err.contains("subject is 257 bytes"), "{err}");

    let mut bytes = vec![STATUS_VERSION_FOR_TEST, 0, 1, 1, b'X', 0, 0, 4, 1];
    bytes.extend_from_slice(&[b'd'; 1025]);
    let err = decode_status(&bytes).unwrap_err().to_string();
    assert!(err.contains("detail is 1025 bytes"), "{err}");

    let too_many = 1025u16.to_be_bytes();
    let err = decode_status(&[STATUS_VERSION_FOR_TEST, too_many[0], too_many[1]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1024"), "{err}");
}
