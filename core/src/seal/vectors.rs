//! The wire protocol's test vectors: `core/testdata/protocol_vectors.txt`
//! seals and opens to exactly its bytes, and `PROTOCOL.md` shows the same
//! vectors, so neither the code nor the document can drift.

use std::path::Path;

use super::payload::{decode_message, encode_status};
use super::*;
use crate::catalogue::ConditionCode;
use crate::condition::{ReportedCondition, StatusSnapshot};

const DATA_FILE: &str = "testdata/protocol_vectors.txt";
const DOCUMENT: &str = "../PROTOCOL.md";

/// One vector: its name and its `field = value` lines in order (wrapped
/// values joined).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Vector {
    name: String,
    fields: Vec<(String, String)>,
}

impl Vector {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("vector {}: no field {name}", self.name))
    }

    fn hex(&self, name: &str) -> Vec<u8> {
        let text = self.get(name);
        assert!(
            text.len().is_multiple_of(2),
            "vector {}: {name} is odd-length hex",
            self.name
        );
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .unwrap_or_else(|_| panic!("vector {}: {name} is not hex", self.name))
            })
            .collect()
    }

    fn conditions(&self) -> Vec<ReportedCondition> {
        self.fields
            .iter()
            .filter(|(field, _)| field == "condition")
            .map(|(_, value)| {
                let parts: Vec<&str> = value.split('|').map(str::trim).collect();
                let [code, subject, detail] = parts[..] else {
                    panic!(
                        "vector {}: condition {value:?} is not CODE | subject | detail",
                        self.name
                    )
                };
                ReportedCondition::new(ConditionCode::parse(code).unwrap(), subject, detail)
                    .unwrap()
            })
            .collect()
    }
}

/// The line format both files use (described at the top of the data file).
fn parse(text: &str) -> Vec<Vector> {
    let mut vectors: Vec<Vector> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.trim().strip_prefix('[') {
            vectors.push(Vector {
                name: name.trim_end_matches(']').to_owned(),
                fields: Vec::new(),
            });
            continue;
        }
        let vector = vectors.last_mut().expect("a field before the first [name]");
        if line.starts_with(char::is_whitespace) {
            let (_, value) = vector.fields.last_mut().expect("a continuation line");
            value.push_str(line.trim());
        } else {
            let (field, value) = line.split_once('=').expect("a `field = value` line");
            vector
                .fields
                .push((field.trim().to_owned(), value.trim().to_owned()));
        }
    }
    vectors
}

/// The vectors shown in the document: fenced blocks whose first line is `[name]`.
fn parse_markdown(text: &str) -> Vec<Vector> {
    let mut blocks = String::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match block.take() {
                Some(body) if body.trim_start().starts_with('[') => blocks.push_str(&body),
                Some(_) => {}
                None => block = Some(String::new()),
            }
        } else if let Some(body) = block.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    parse(&blocks)
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vectors() -> Vec<Vector> {
    let vectors = parse(&read(DATA_FILE));
    assert!(vectors.len() >= 4, "{DATA_FILE} has too few vectors");
    vectors
}

#[test]
fn every_vector_seals_to_its_bytes_and_opens() {
    for v in vectors() {
        let name = &v.name;
        let key = InstallationKey::from_text(v.get("key")).unwrap();
        let slc = Slc::new(v.get("slc_typed")).unwrap();
        assert_eq!(slc.as_str(), v.get("slc"), "{name}: the SLC's normal form");
        let server = RecordingServerId::new(v.get("server")).unwrap();
        let kind = match v.get("kind") {
            "heartbeat" => MessageKind::Heartbeat,
            "status_report" => MessageKind::StatusReport,
            other => panic!("{name}: unknown kind {other}"),
        };
        let binding = Binding {
            slc: &slc,
            server: &server,
            kind,
            sequence: v.get("sequence").parse().unwrap(),
        };
        let nonce: [u8; NONCE_LEN] = v.hex("nonce").try_into().unwrap();

        let conditions = v.conditions();
        let plaintext = match kind {
            MessageKind::Heartbeat => {
                assert!(
                    conditions.is_empty(),
                    "{name}: a heartbeat has no conditions"
                );
                Vec::new()
            }
            MessageKind::StatusReport => encode_status(&StatusSnapshot::new(conditions).unwrap()),
        };
        assert_eq!(plaintext, v.hex("plaintext"), "{name}: plaintext");

        let mut buffer = [0u8; MAX_AAD_LEN];
        let aad = associated_data(&mut buffer, key.id(), &binding);
        assert_eq!(aad, v.hex("aad"), "{name}: associated data");

        let sealed = seal_with_nonce_for_test_vectors(&key, &binding, &plaintext, nonce);
        assert_eq!(sealed, v.hex("sealed"), "{name}: sealed bytes");

        let opened = open(&key, &binding, &v.hex("sealed")).unwrap();
        assert_eq!(opened, plaintext, "{name}: opened");
        let snapshot = decode_message(kind, &opened).unwrap();
        assert_eq!(
            snapshot
                .map(|s| s.conditions().to_vec())
                .unwrap_or_default(),
            v.conditions(),
            "{name}: decoded conditions"
        );
    }
}

#[test]
fn the_document_shows_exactly_the_vectors_of_the_data_file() {
    let shown = parse_markdown(&read(DOCUMENT));
    assert_eq!(
        shown,
        vectors(),
        "PROTOCOL.md's vectors differ from {DATA_FILE}: copy the data file's blocks into it"
    );
}

#[test]
fn a_vector_shows_the_slc_normal_form() {
    assert!(
        vectors().iter().any(|v| v.get("slc_typed") != v.get("slc")),
        "no vector has an SLC typed otherwise than in its normal form"
    );
}
