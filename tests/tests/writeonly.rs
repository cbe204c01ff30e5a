//! Write-only backups end to end, through the `cairn` binary against a real
//! nats-server, PostgreSQL, a directory network and an S3 server (s3s-fs): the pipeline runs
//! with a writer file and no passphrase, backs up, and nothing the workers
//! hold (configuration, environment, key material on disk) opens a chunk,
//! a manifest or a data key of what they wrote; the passphrase still
//! restores everything. A writer of another repository, or one whose pinned
//! public key is not the repository's, is refused before a byte moves.

use cairn_crypto::datakey::{open_wrapped, ReadKey};
use cairn_crypto::{Key32, Sealer, WriterFile};
use cairn_tests::*;
use std::collections::BTreeSet;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every 64-hex-digit token in `text`: the shape every 32-byte secret of
/// Cairn's takes in a file or a variable.
fn hex32_tokens(text: &str, into: &mut BTreeSet<[u8; 32]>) {
    for w in text.split(|c: char| !c.is_ascii_hexdigit()) {
        if w.len() == 64 {
            into.insert(hex::decode(w).unwrap().try_into().unwrap());
        }
    }
}

#[test]
fn a_write_only_pipeline_backs_up_and_cannot_read_what_it_wrote() {
    let s3_dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(s3_dir.path());
    let mut env = Env::with(server.options("objects"));
    env.init();
    let writer_path = env.path().join("worker/writer.json");
    std::fs::create_dir_all(writer_path.parent().unwrap()).unwrap();
    let w = env.json(&[
        "key",
        "writer",
        "--out",
        writer_path.to_str().unwrap(),
        "--json",
    ]);
    let public = w["public_key"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&writer_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the writer file is its holder's alone");
    }
    // Never overwritten.
    let again = env.run(&["key", "writer", "--out", writer_path.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("cannot create writer file"),
        "{}",
        stderr(&again)
    );
    // The repository's config shows the same public key the writer pins.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.network_dir("local").join("config")).unwrap())
            .unwrap();
    assert_eq!(config["format"], 4);
    assert_eq!(config["public_key"].as_str(), Some(public.as_str()));

    // The whole pipeline with the writer file and no passphrase: what a
    // write-only deployment runs.
    env.set_env("CAIRN_PASSPHRASE", "");
    env.set_env("CAIRN_KEYS__WRITER_FILE", writer_path.to_str().unwrap());
    env.set_env("CAIRN_INGEST__FILES_CACHE", "true");
    env.serve(&["all"]);
    let src = env.source_dir("src");
    std::fs::write(
        src.join("letter.txt"),
        b"write-only marker: dear auditor\n".repeat(50),
    )
    .unwrap();
    std::fs::write(
        src.join("big.bin"),
        (0..600_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let b1 = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(b1["status"], "completed", "{b1}");
    std::fs::write(src.join("second.txt"), b"added before the second backup\n").unwrap();
    let b2 = env.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(b2["status"], "completed", "{b2}");
    // Deduplication across backups sealed under different data keys: the
    // second stores only what changed.
    let (total, new) = (
        b2["chunks_total"].as_u64().unwrap(),
        b2["chunks_new"].as_u64().unwrap(),
    );
    assert!(
        new < total && new < b1["chunks_new"].as_u64().unwrap(),
        "{b2}"
    );
    let (id1, id2) = (
        b1["backup_id"].as_str().unwrap().to_string(),
        b2["backup_id"].as_str().unwrap().to_string(),
    );
    // The workers' own restore attempt: no key that opens anything.
    let o = env.run(&[
        "restore",
        &id1,
        "--to",
        env.path().join("nope").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("CAIRN_PASSPHRASE"), "{}", stderr(&o));

    // Everything the workers hold: their configuration, their environment,
    // the writer file and whatever they wrote on this host besides the
    // networks (files caches, logs).
    let mut held = BTreeSet::new();
    let mut text = std::fs::read_to_string(env.path().join("cairn.toml")).unwrap();
    text.push_str(&std::fs::read_to_string(&writer_path).unwrap());
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("CAIRN")) {
        text.push_str(&format!("\n{k}={v}\n"));
    }
    for f in Env::files_under(env.path()) {
        let s = f.to_string_lossy();
        if s.contains("/data/networks/") || s.contains("/src/") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&f) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    hex32_tokens(&text, &mut held);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&writer_path).unwrap()).unwrap();
    let fields: BTreeSet<&str> = file
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["format", "repo_id", "public_key", "id_key"]),
        "the writer file holds the public key and the chunk-id key, nothing else"
    );
    let writer = WriterFile::from_json("w", &std::fs::read(&writer_path).unwrap())
        .unwrap()
        .writer()
        .unwrap();
    assert!(
        held.len() >= 2,
        "the test found the writer's keys: {}",
        held.len()
    );

    // What the networks hold of the first backup: its manifest, a pack of
    // its data, and its wrapped data key.
    let net = env.network_dir("local");
    let manifest = std::fs::read(net.join(format!("backups/{id1}/manifest"))).unwrap();
    let key_id = cairn_crypto::seal::key_id_of(&manifest).expect("a sealed manifest");
    let wrapped = std::fs::read(net.join(format!("datakeys/{}", key_id.to_hex()))).unwrap();
    // A chunk of the first backup, where its public chunk list says it is.
    let page = cairn_repo::decode_page(
        &id1.parse().unwrap(),
        0,
        &std::fs::read(net.join(format!("backups/{id1}/chunks.0"))).unwrap(),
    )
    .unwrap();
    let (chunk_id, pack, offset, len) = page
        .ids
        .iter()
        .zip(page.locations().unwrap())
        .find_map(|(id, loc)| match loc {
            cairn_repo::format::Location::Packed { pack, offset, len } => {
                Some((*id, pack, offset as usize, len as usize))
            }
            _ => None,
        })
        .expect("from format 3 every chunk is in a pack");
    let pack_bytes =
        std::fs::read(net.join(format!("packs/{}/{}", &pack.to_hex()[..2], pack.to_hex())))
            .unwrap();
    let sealed_chunk = &pack_bytes[offset..offset + len];
    assert_eq!(cairn_crypto::seal::key_id_of(sealed_chunk), Some(key_id));

    // Control: the passphrase's keyring opens all three (so a failure
    // below is the key's, not the test's).
    let key_file = Env::files_under(&net.join("keys")).pop().unwrap();
    let keyring = cairn_crypto::KeyFile::from_json("k", &std::fs::read(key_file).unwrap())
        .unwrap()
        .open(&cairn_crypto::Secret::new(PASSPHRASE))
        .unwrap();
    let reader = keyring.sealer();
    // Format 4: the data key is wrapped to the dataset's key, itself
    // wrapped to the repository's.
    let dataset_key =
        std::fs::read(Env::files_under(&net.join("datasets")).pop().unwrap()).unwrap();
    reader.learn_dataset_key(&dataset_key).unwrap();
    reader.learn(key_id, &wrapped).unwrap();
    reader.open("manifest", id1.as_bytes(), &manifest).unwrap();
    reader.open("chunk", &chunk_id.0, sealed_chunk).unwrap();

    for k in &held {
        // As the data key itself, or as the read key's seed: nothing opens.
        let as_data = Sealer::for_data_key(key_id, &Key32::from_slice(k).unwrap());
        assert!(as_data.open("manifest", id1.as_bytes(), &manifest).is_err());
        assert!(as_data.open("chunk", &chunk_id.0, sealed_chunk).is_err());
        let err = open_wrapped(&ReadKey::from_seed(*k), writer.id_key(), key_id, &wrapped)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wrapped to public key") || err.contains("does not open"),
            "{err}"
        );
        assert!(!wrapped.windows(32).any(|w| w == k));
        // Nor as the dataset key's seed, nor does it open the dataset key.
        let tag = cairn_crypto::datasetkey::tag_of(&dataset_key).unwrap();
        assert!(open_wrapped(
            &ReadKey::from_seed(*k),
            writer.id_key(),
            tag,
            &dataset_key[32..184]
        )
        .is_err());
        assert!(!dataset_key.windows(32).skip(1).any(|w| w == k));
    }
    // Each backup had its own data key; the second's pack names its own.
    let m2 = std::fs::read(net.join(format!("backups/{id2}/manifest"))).unwrap();
    let key2 = cairn_crypto::seal::key_id_of(&m2).unwrap();
    assert_ne!(key2, key_id);
    assert!(net.join(format!("datakeys/{}", key2.to_hex())).exists());
    assert!(server
        .root
        .join(&server.bucket)
        .join(format!("repo/datakeys/{}", key2.to_hex()))
        .exists());

    // The passphrase opens both, from either network alone, byte for byte
    // (the second backup reuses the first's chunks, sealed under the first
    // backup's key).
    env.set_env("CAIRN_PASSPHRASE", PASSPHRASE);
    for (id, net) in [(&id1, "objects"), (&id2, "local"), (&id2, "objects")] {
        let out = env.restore_from_only(net, id);
        let want = snapshot(&src);
        let got = snapshot(&out.join("src"));
        if id == &id1 {
            assert_eq!(
                got.len(),
                want.len() - 1,
                "the first backup lacks second.txt"
            );
        } else {
            assert_eq!(got, want, "{id} from {net}");
        }
    }
}

/// `cairn backup --stdin` (ingest in this process, with the configured
/// writer), which must fail.
fn refused_stdin_backup(env: &Env) -> std::process::Output {
    let o = env.run_with(
        env.cmd(),
        &["backup", "--stdin", "--dataset", "d"],
        Some(b"data"),
    );
    assert!(!o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn a_writer_of_another_repository_or_key_is_refused_before_anything_moves() {
    let mut env = Env::with(Options::default());
    env.init();
    let dir = env.path().join("w");
    std::fs::create_dir_all(&dir).unwrap();
    let mine = dir.join("mine.json");
    env.ok(&["key", "writer", "--out", mine.to_str().unwrap()]);
    let networks_before = contents(&env.network_dir("local"));

    // Another repository's writer file.
    let other = Env::with(Options::default());
    other.init();
    let theirs = dir.join("theirs.json");
    other.ok(&["key", "writer", "--out", theirs.to_str().unwrap()]);
    env.set_env("CAIRN_PASSPHRASE", "");
    env.set_env("CAIRN_KEYS__WRITER_FILE", theirs.to_str().unwrap());
    let o = refused_stdin_backup(&env);
    assert!(
        stderr(&o).contains("is for repository") && stderr(&o).contains("the networks hold"),
        "{}",
        stderr(&o)
    );

    // A config whose public key is not the one the writer pins (a network
    // substituting its own): refused, naming both.
    env.set_env("CAIRN_KEYS__WRITER_FILE", mine.to_str().unwrap());
    let config_path = env.network_dir("local").join("config");
    let original = std::fs::read(&config_path).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let planted = ReadKey::generate().public().to_hex();
    config["public_key"] = serde_json::Value::String(planted.clone());
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let o = refused_stdin_backup(&env);
    assert!(
        stderr(&o).contains(&planted) && stderr(&o).contains("pins"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&config_path, &original).unwrap();

    // A damaged writer file.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, b"{\"format\": 1}").unwrap();
    env.set_env("CAIRN_KEYS__WRITER_FILE", bad.to_str().unwrap());
    let o = refused_stdin_backup(&env);
    assert!(
        stderr(&o).contains("writer file") && stderr(&o).contains("not a Cairn writer file"),
        "{}",
        stderr(&o)
    );
    // Nothing any refusal did reached the network.
    assert_eq!(contents(&env.network_dir("local")), networks_before);
}
