//! Every fuzz target's corpus (`fuzz/corpus/<target>/`) and every crash
//! fuzzing ever found (`fuzz/regressions/<target>/`), replayed through the
//! same harness on every test run: a decoder that panics on any of them
//! again fails here, on stable Rust, without cargo-fuzz. `scripts/fuzz.sh`
//! is the fuzzing itself.
//!
//! `CAIRN_UPDATE_FUZZ_SEEDS=1` writes the seeds (`cairn_fuzzing::seeds`)
//! into the corpora first.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    all.retain(|p| p.is_file() && !p.ends_with(".gitkeep"));
    all.sort();
    all
}

#[test]
fn every_corpus_and_every_crash_found_decodes_without_a_panic() {
    if std::env::var_os("CAIRN_UPDATE_FUZZ_SEEDS").is_some() {
        for (i, (target, bytes)) in cairn_fuzzing::seeds().into_iter().enumerate() {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i:02}")), bytes).unwrap();
        }
    }
    // Every target has a fuzz target file and a corpus to replay.
    let targets_dir = fuzz_dir().join("fuzz_targets");
    let mut replayed = Vec::new();
    for (name, harness) in cairn_fuzzing::TARGETS {
        assert!(
            targets_dir.join(format!("{name}.rs")).exists(),
            "harness {name} has no cargo-fuzz target in fuzz/fuzz_targets"
        );
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty: run scripts/fuzz.sh and keep its corpus"
        );
        let crashes = inputs(&fuzz_dir().join("regressions").join(name));
        for input in corpus.iter().chain(&crashes) {
            let bytes = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&bytes));
            assert!(outcome.is_ok(), "{name} panics on {}", input.display());
        }
        replayed.push(format!("{name} {}+{}", corpus.len(), crashes.len()));
    }
    // And no fuzz target without a harness here.
    for e in std::fs::read_dir(&targets_dir).unwrap() {
        let file = e.unwrap().path();
        let stem = file.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            cairn_fuzzing::target(&stem).is_some(),
            "fuzz target {stem} is not in cairn_fuzzing::TARGETS"
        );
    }
    eprintln!("replayed (corpus+crashes): {}", replayed.join(", "));
}

/// The seeds are what Cairn itself writes: each decodes (a seed that did
/// not would start fuzzing from noise).
#[test]
fn the_seeds_are_well_formed() {
    for (target, bytes) in cairn_fuzzing::seeds() {
        match target {
            "events" => assert!(
                cairn_events::decode::<cairn_events::Envelope>(&bytes, "event").is_ok()
                    || cairn_events::decode_reply::<cairn_events::Answer>(&bytes, "answer").is_ok()
            ),
            "proof_file" => assert!(
                cairn_tlog::proof_file::parse(&bytes).is_ok()
                    || String::from_utf8_lossy(&bytes).contains("consistency")
            ),
            "arweave_answers" => assert!(cairn_networks::arweave::confirmations(
                true,
                &String::from_utf8_lossy(&bytes)
            )
            .is_some()),
            _ => {}
        }
    }
}
