//! `schemas/events.schema.json` is the machine-readable event catalogue that
//! consumers in other languages read. It is generated from the Rust types;
//! this test fails when the two disagree. Regenerate with
//! `CAIRN_UPDATE_SCHEMAS=1 cargo test -p cairn-events --test catalogue`.

// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used)]

use cairn_events::{Answer, Envelope, Event, PlainChunk, Progress, SealedObject, SCHEMA_VERSION};
use serde_json::{json, Value};

fn generate() -> Value {
    let schema_of = |root: schemars::Schema| serde_json::to_value(root).unwrap();
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let subjects = cairn_events::subjects::Subjects::new("cairn").unwrap();
    let kinds: Vec<Value> = Event::CATALOGUE
        .iter()
        .map(|(kind, from, to)| {
            json!({
                "kind": kind,
                "subject": if *kind == "backup.requested" {
                    format!("cairn.evt.{kind}.<backup_id>.<dataset>")
                } else {
                    format!("cairn.evt.{kind}.<backup_id>")
                },
                "stream": subjects.events_stream(),
                "emitted_by": from,
                "consumed_by": to,
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Cairn events",
        "description": "Every message Cairn publishes, MessagePack-encoded with named fields (so this JSON Schema describes the decoded map), but for progress, which is JSON. Generated from shared/events; checked by shared/events/tests/catalogue.rs.",
        "x-cairn-schema-version": SCHEMA_VERSION,
        "x-cairn-subject-prefix": "cairn (configurable: nats.prefix)",
        "x-cairn-events": kinds,
        "x-cairn-transport": [
            {"type": "PlainChunk", "subject": "cairn.seal.<backup_id>", "stream": null, "emitted_by": "ingest", "consumed_by": "encrypt (queue group cairn-encrypt)", "note": "core-NATS request, never stored: carries plaintext; answered with an Answer"},
            {"type": "Answer", "subject": "the request's reply inbox", "stream": null, "emitted_by": "encrypt", "consumed_by": "ingest"},
            {"type": "SealedObject", "subject": "cairn.sealed.<backup_id>", "stream": subjects.sealed_stream(), "emitted_by": "encrypt, ingest (public chunk lists)", "consumed_by": "store (one durable consumer per network)"},
            {"type": "Progress", "subject": "cairn.progress.<backup_id>", "stream": null, "emitted_by": "ingest (every 250 ms while it reads)", "consumed_by": "cli (progress bars)", "note": "core NATS, never stored; JSON, not MessagePack"},
        ],
        "x-cairn-dead-letters": {"subject": "cairn.dlq.<stage>", "stream": subjects.dlq_stream(), "headers": ["Cairn-Dlq-Stage", "Cairn-Dlq-Subject", "Cairn-Dlq-Reason", "Cairn-Dlq-Deliveries", "Cairn-Dlq-Payload-Sha256"]},
        "oneOf": [
            {"$ref": "#/$defs/Envelope"},
            {"$ref": "#/$defs/PlainChunk"},
            {"$ref": "#/$defs/Answer"},
            {"$ref": "#/$defs/SealedObject"}
        ],
        "$defs": {
            "Envelope": schema_of(settings.clone().into_generator().into_root_schema_for::<Envelope>()),
            "PlainChunk": schema_of(settings.clone().into_generator().into_root_schema_for::<PlainChunk>()),
            "Answer": schema_of(settings.clone().into_generator().into_root_schema_for::<Answer>()),
            "SealedObject": schema_of(settings.clone().into_generator().into_root_schema_for::<SealedObject>()),
            "Progress": schema_of(settings.into_generator().into_root_schema_for::<Progress>()),
        }
    })
}

#[test]
fn catalogue_matches_the_rust_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/events.schema.json"
    );
    let generated = generate();
    if std::env::var_os("CAIRN_UPDATE_SCHEMAS").is_some() {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let text = std::fs::read_to_string(path).expect("schemas/events.schema.json exists");
    let stored: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(
        stored == generated,
        "schemas/events.schema.json is out of date with shared/events: regenerate with CAIRN_UPDATE_SCHEMAS=1 cargo test -p cairn-events --test catalogue"
    );
}

#[test]
fn catalogue_lists_every_kind_once() {
    let listed: Vec<&str> = Event::CATALOGUE.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(listed, Event::KINDS);
}
