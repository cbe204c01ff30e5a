//! Every inclusion and consistency test vector of transparency-dev/merkle
//! (Apache-2.0; `vectors/rfc6962-merkle/LICENSE`, origin in its README):
//! the happy paths are accepted, every tampered or malformed case refused.

// A failed unwrap in a test is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use cairn_tlog::{verify_consistency, verify_inclusion};
use serde_json::Value;
use std::path::Path;

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .expect("base64 in a vector")
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

/// (file, wantErr, what the verifier said) for every vector under `dir`.
fn run(dir: &str, check: impl Fn(&Value) -> Result<(), cairn_tlog::ProofError>) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/rfc6962-merkle")
        .join(dir);
    let mut n = 0;
    let mut wrong = Vec::new();
    for e in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let e = e.unwrap();
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let got = check(&v);
        if got.is_err() != want_err {
            wrong.push(format!(
                "{}: wantErr {want_err}, got {got:?}",
                e.path().strip_prefix(&root).unwrap().display()
            ));
        }
        n += 1;
    }
    assert!(
        wrong.is_empty(),
        "{} of {n} vectors wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    n
}

#[test]
fn inclusion_vectors() {
    let n = run("inclusion", |v| {
        verify_inclusion(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        )
    });
    assert!(n >= 90, "only {n} inclusion vectors found");
}

#[test]
fn consistency_vectors() {
    let n = run("consistency", |v| {
        verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &proof(&v["proof"]),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
        )
    });
    assert!(n >= 90, "only {n} consistency vectors found");
}
