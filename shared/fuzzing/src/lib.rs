//! What each fuzz target feeds its bytes to: every decoder Cairn runs on
//! bytes it did not make itself (events and replies off the bus, sealed
//! objects, manifests, chunk lists, tree chunks and catalogue entries from
//! the networks, key files and shares, ledger proofs and checkpoints, the
//! IPFS and Arweave gateways' answers). Shared by the cargo-fuzz targets
//! in `fuzz/` and by the test that replays their corpora and every crash
//! found on stable Rust (`tests/tests/fuzz_corpora.rs`).
//!
//! A decoder may refuse its input; it must never panic, hang or allocate
//! without bound. Each harness only calls and drops: a panic is the crash.

use cairn_crypto::{DataKeyId, ObjectKind, Sealer};
use cairn_events::BackupId;
use std::sync::OnceLock;

/// A harness: feeds one input to its decoders.
pub type Harness = fn(&[u8]);

/// Every target by name, for the replay test and `scripts/fuzz.sh`.
pub const TARGETS: &[(&str, Harness)] = &[
    ("events", events),
    ("sealed_object", sealed_object),
    ("shard", shard),
    ("manifest", manifest),
    ("chunk_list", chunk_list),
    ("tree", tree),
    ("catalogue", catalogue),
    ("key_files", key_files),
    ("proof_file", proof_file),
    ("checkpoint", checkpoint),
    ("ipfs_answers", ipfs_answers),
    ("arweave_answers", arweave_answers),
];

/// The harness named `name`.
pub fn target(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Messages off the bus: an event's envelope, a sealed object on its way
/// to store, encrypt's answer to a seal request, a plaintext chunk.
pub fn events(data: &[u8]) {
    let _ = cairn_events::decode::<cairn_events::Envelope>(data, "event");
    let _ = cairn_events::decode::<cairn_events::SealedObject>(data, "sealed object");
    let _ = cairn_events::decode::<cairn_events::PlainChunk>(data, "chunk");
    let _ = cairn_events::decode_reply::<cairn_events::Answer>(data, "answer");
}

fn sealer() -> &'static Sealer {
    static S: OnceLock<Sealer> = OnceLock::new();
    S.get_or_init(|| Sealer::for_data_key(DataKeyId([7; 16]), &cairn_crypto::Key32::random()))
}

fn backup() -> BackupId {
    BackupId::parse("fuzz").expect("a valid id")
}

/// Any bytes read back from a network as a sealed object: the header is
/// parsed before anything is authenticated.
pub fn sealed_object(data: &[u8]) {
    let _ = sealer().open("object", b"id", data);
    let _ = sealer().missing_key(data);
}

/// Any bytes read back from a network where an erasure-coded pack's shard
/// should be: parsed, and rebuilt from with a copy of themselves as
/// another network's answer.
pub fn shard(data: &[u8]) {
    let _ = cairn_repo::erasure::Shard::parse(data);
    let b = bytes::Bytes::copy_from_slice(data);
    let _ = cairn_repo::erasure::rebuild(&[("a".into(), b.clone()), ("b".into(), b)]);
}

/// What follows a successful open: the plaintext (compressed or not, the
/// first byte says) of an object sealed under a key the reader holds,
/// whoever wrote it with that key.
fn sealed_as(kind: ObjectKind, data: &[u8]) -> Vec<u8> {
    let (compressed, payload) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    sealer().seal(kind, compressed, backup().as_str().as_bytes(), payload)
}

pub fn manifest(data: &[u8]) {
    let sealed = sealed_as(ObjectKind::Manifest, data);
    let _ = cairn_repo::open_manifest(sealer(), &backup(), &sealed);
}

pub fn catalogue(data: &[u8]) {
    let sealed = sealed_as(ObjectKind::Catalogue, data);
    let _ = cairn_repo::catalogue::Entry::open(sealer(), &backup(), &sealed);
}

pub fn chunk_list(data: &[u8]) {
    let _ = cairn_repo::decode_page(&backup(), 0, data);
}

pub fn tree(data: &[u8]) {
    let _ = cairn_repo::tree::decode_records(data);
}

/// Key files, writer files and threshold shares an operator points Cairn at.
pub fn key_files(data: &[u8]) {
    let _ = cairn_crypto::KeyFile::from_json("key", data);
    let _ = cairn_crypto::WriterFile::from_json("writer", data);
    let _ = cairn_crypto::Share::from_json("share", data);
}

/// An inclusion or consistency proof an auditor is handed.
pub fn proof_file(data: &[u8]) {
    let (_, vkey) = log_keys();
    let _ = cairn_tlog::proof_file::parse(data);
    let _ = cairn_tlog::proof_file::check(data, b"entry", vkey);
    let _ = cairn_tlog::proof_file::check_consistency(data, vkey);
}

fn log_keys() -> &'static (String, String) {
    static K: OnceLock<(String, String)> = OnceLock::new();
    K.get_or_init(|| cairn_tlog::checkpoint::generate("fuzz.cairn/log").expect("a log key"))
}

/// A checkpoint as published or fetched: a signed note, maybe cosigned.
pub fn checkpoint(data: &[u8]) {
    let (_, vkey) = log_keys();
    let _ = cairn_tlog::checkpoint::verify(data, vkey);
    let _ = cairn_tlog::checkpoint::verify_cosigned(data, vkey, vkey);
}

pub fn ipfs_answers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = cairn_networks::ipfs::error_message(&text);
    let _ = cairn_networks::ipfs::added_root(&text);
}

pub fn arweave_answers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = cairn_networks::arweave::confirmations(true, &text);
    let _ = cairn_networks::arweave::confirmations(false, &text);
}

/// Well-formed inputs for the targets that take them, made by Cairn's own
/// encoders: where fuzzing starts from (`fuzz/corpus/<target>/seed-*`,
/// written by `CAIRN_UPDATE_FUZZ_SEEDS=1` and the corpus test).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use cairn_events::{encode, Answer, BackupRequest, Envelope, Event, Source};
    let mut out = Vec::new();
    let request = Envelope::new(
        "fuzz",
        backup(),
        Event::BackupRequested(BackupRequest {
            dataset: "payroll".into(),
            tags: vec!["sox".into()],
            source: Source::Paths {
                paths: vec!["/srv/data".into()],
            },
            networks: vec!["local".into()],
            min_copies: Some(1),
            requested_by: "fuzz".into(),
            force_read: false,
        }),
        &[],
    );
    out.push(("events", encode(&request)));
    out.push((
        "events",
        encode(&Envelope::new(
            "fuzz",
            backup(),
            Event::ForgetRequested {
                requested_by: "fuzz".into(),
            },
            &[],
        )),
    ));
    out.push((
        "events",
        encode(&Answer::Busy {
            reason: "full".into(),
        }),
    ));
    out.push((
        "sealed_object",
        sealer().seal(ObjectKind::Chunk, true, b"id", b"payload"),
    ));
    let (skey, _) = log_keys();
    let key = cairn_tlog::checkpoint::LogKey::from_text(skey).expect("the log key");
    let signed = key
        .sign(5, cairn_tlog::Hash([3; 32]))
        .expect("a checkpoint");
    out.push(("checkpoint", signed.clone()));
    out.push(("checkpoint", key.cosign(&signed).expect("a cosignature")));
    let hashes = [cairn_tlog::Hash([1; 32]), cairn_tlog::Hash([2; 32])];
    out.push((
        "proof_file",
        cairn_tlog::proof_file::format(3, &hashes, &signed),
    ));
    out.push((
        "proof_file",
        cairn_tlog::proof_file::format_consistency(&signed, &signed, &hashes),
    ));
    out.push((
        "ipfs_answers",
        b"{\"Name\":\"a\",\"Hash\":\"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\",\"Size\":\"3\"}\n".to_vec(),
    ));
    out.push((
        "ipfs_answers",
        b"{\"Message\":\"file does not exist\",\"Code\":0,\"Type\":\"error\"}".to_vec(),
    ));
    out.push((
        "arweave_answers",
        b"{\"block_height\":12,\"block_indep_hash\":\"x\",\"number_of_confirmations\":3}".to_vec(),
    ));
    out.push(("arweave_answers", b"Pending".to_vec()));
    out.push((
        "key_files",
        b"{\"format\":1,\"repo_id\":\"x\",\"name\":\"k\"}".to_vec(),
    ));
    let pack = sealer().seal(ObjectKind::Chunk, false, b"id", &[5u8; 3000]);
    for shard in cairn_repo::erasure::encode(&pack, 2, 3)
        .expect("a valid coding")
        .into_iter()
        .take(2)
    {
        out.push(("shard", shard));
    }
    out
}
