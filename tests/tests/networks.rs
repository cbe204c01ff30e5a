//! One conformance suite for every `Network` implementation, run against a
//! real server of each protocol: a local directory, and `s3s-fs` (a real S3
//! server with SigV4) for the S3 adapter. Then backups through the whole
//! pipeline to a directory and an S3 server at once.

use bytes::Bytes;
use cairn_config::NetworkConfig;
use cairn_networks::{DynNetwork, NetworkError, Put, PutMode};
use cairn_tests::*;
use cairn_tests::{network as net_config, with};
use serde_json::json;
use std::process::Command;

async fn conformance(net: DynNetwork) {
    let name = net.name().to_string();
    net.health()
        .await
        .unwrap_or_else(|e| panic!("{name}: health: {e}"));
    let big: Vec<u8> = (0..900 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let p = "chunks/ab/abcdef";
    assert_eq!(
        net.put(p, Bytes::from(big.clone()), PutMode::IfAbsent)
            .await
            .unwrap(),
        Put::Written,
        "{name}"
    );
    assert_eq!(
        net.put(p, Bytes::from_static(b"other"), PutMode::IfAbsent)
            .await
            .unwrap(),
        Put::Existed,
        "{name}"
    );
    assert_eq!(
        net.get(p).await.unwrap().as_ref(),
        big.as_slice(),
        "{name}: get after put"
    );
    // Ranged reads, as restore reads one chunk out of a pack: inside, at
    // the end (cut short), and past it.
    for (offset, len) in [(0u64, 52u64), (123_456, 4321), (900 * 1024 - 10, 100)] {
        let part = net.get_range(p, offset, len).await.unwrap();
        let end = (offset + len).min(big.len() as u64) as usize;
        assert_eq!(
            part.as_ref(),
            &big[offset as usize..end],
            "{name}: get_range({offset}, {len})"
        );
    }
    assert!(
        net.get_range(p, 900 * 1024 + 5, 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}: a range past the end is empty"
    );
    assert!(net.exists(p).await.unwrap());
    net.put(
        "backups/b1/manifest",
        Bytes::from_static(b"v1"),
        PutMode::Overwrite,
    )
    .await
    .unwrap();
    net.put(
        "backups/b1/manifest",
        Bytes::from_static(b"v2"),
        PutMode::Overwrite,
    )
    .await
    .unwrap();
    assert_eq!(
        net.get("backups/b1/manifest").await.unwrap().as_ref(),
        b"v2",
        "{name}: overwrite"
    );
    net.put(
        "backups/b2/manifest",
        Bytes::from_static(b"x"),
        PutMode::Overwrite,
    )
    .await
    .unwrap();
    net.put("config", Bytes::from_static(b"{}"), PutMode::IfAbsent)
        .await
        .unwrap();
    assert_eq!(
        net.list("backups/").await.unwrap(),
        vec![
            "backups/b1/manifest".to_string(),
            "backups/b2/manifest".to_string()
        ],
        "{name}: list"
    );
    assert_eq!(net.list("chunks/").await.unwrap(), vec![p.to_string()]);
    let u = net.usage().await.unwrap();
    if net.capabilities().can_delete {
        assert_eq!(
            (u.objects, u.bytes),
            (4, big.len() as u64 + 2 + 1 + 2),
            "{name}: usage"
        );
    } else {
        // Permanent: every version ever written counts.
        assert_eq!(
            (u.objects, u.bytes),
            (5, big.len() as u64 + 2 + 2 + 1 + 2),
            "{name}: usage"
        );
    }
    assert!(net.list("nothing/").await.unwrap().is_empty());
    let err = net.get("chunks/zz/missing").await.unwrap_err();
    assert!(
        err.is_not_found(),
        "{name}: a missing object must be NotFound, got {err}"
    );
    assert!(
        err.to_string().contains(&name),
        "{name}: errors name the network: {err}"
    );
    assert!(!net.exists("chunks/zz/missing").await.unwrap());
    if net.capabilities().can_delete {
        net.delete(p).await.unwrap();
        assert!(!net.exists(p).await.unwrap(), "{name}: delete");
        net.delete(p).await.unwrap(); // deleting twice is fine
    } else {
        let err = net.delete(p).await.unwrap_err();
        assert!(
            matches!(err, NetworkError::NoDelete { .. }),
            "{name}: {err}"
        );
        assert!(net.exists(p).await.unwrap(), "{name}: still there");
    }
    for bad in ["/etc/passwd", "../x", "a//b", ""] {
        assert!(
            matches!(net.get(bad).await, Err(NetworkError::BadPath { .. })),
            "{name}: {bad}"
        );
    }
}

/// An object larger than one part goes up as a multipart upload (its ETag
/// says how many parts) and reads back whole.
async fn multipart_round_trip(cfg: &NetworkConfig, object_url: &str, secret: &str) {
    let cfg = with(cfg, json!({"multipart_part_bytes": 5 << 20})).unwrap();
    let net = cairn_networks::open(&cfg).unwrap();
    let big: Vec<u8> = (0..12 << 20).map(|i: usize| (i / 7 % 251) as u8).collect();
    net.put("packs/p1", Bytes::from(big.clone()), PutMode::IfAbsent)
        .await
        .unwrap();
    assert!(net.get("packs/p1").await.unwrap().as_ref() == big.as_slice());
    let head = tokio::task::block_in_place(|| {
        s3_curl(
            "HEAD",
            object_url,
            s3_of(&cfg).region.as_deref().unwrap_or("us-east-1"),
            s3_of(&cfg).access_key_id.as_deref().unwrap(),
            secret,
            &[],
        )
    });
    assert!(
        head.to_lowercase().contains("etag:") && head.contains("-3\""),
        "not a 3-part upload: {head}"
    );
}

fn s3_config(s: &S3Server, name: &str) -> NetworkConfig {
    net_config(
        json!({"name": name, "kind": "s3", "endpoint": s.endpoint(), "bucket": s.bucket,
                   "access_key_id": s.access_key, "key_prefix": "repo"}),
    )
}

fn s3_of(cfg: &NetworkConfig) -> &cairn_networks::s3::config::S3Config {
    match &cfg.kind {
        cairn_networks::Kind::S3(s3) => s3,
        other => panic!("not s3: {other:?}"),
    }
}

#[tokio::test]
async fn fs_network_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = net_config(json!({"name": "dir", "kind": "fs", "path": dir.path().join("net")}));
    conformance(cairn_networks::open(&cfg).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_network_conforms_against_s3s_fs() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", server.secret_key)).unwrap();
    let cfg = with(
        &s3_config(&server, "s3one"),
        json!({"secret_access_key_file": secret}),
    )
    .unwrap();
    conformance(cairn_networks::open(&cfg).unwrap()).await;
    // Objects live under the key prefix, in the bucket's directory.
    assert!(server.root.join(&server.bucket).join("repo").exists());
    multipart_round_trip(
        &cfg,
        &format!("{}/{}/repo/packs/p1", server.endpoint(), server.bucket),
        &server.secret_key,
    )
    .await;

    // Wrong credentials: a clear error naming the network, not a hang.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-the-secret").unwrap();
    let wrong = with(
        &s3_config(&server, "s3wrong"),
        json!({"secret_access_key_file": bad}),
    )
    .unwrap();
    let err = cairn_networks::open(&wrong)
        .unwrap()
        .health()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3wrong"), "{err}");
    // No credentials at all: refused at configuration time, saying where to put them.
    let none = with(
        &s3_config(&server, "s3none"),
        json!({"access_key_id": null}),
    )
    .unwrap();
    let err = cairn_networks::open(&none)
        .err()
        .expect("no credentials")
        .to_string();
    assert!(err.contains("access key id"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_network_conforms_against_garage() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| GarageServer::start(dir.path()));
    let secret = dir.path().join("secret");
    std::fs::write(&secret, &server.secret).unwrap();
    let cfg = net_config(
        json!({"name": "garage", "kind": "s3", "endpoint": server.endpoint,
        "region": "garage", "bucket": server.bucket, "access_key_id": server.key_id,
        "secret_access_key_file": secret}),
    );
    conformance(cairn_networks::open(&cfg).unwrap()).await;
    multipart_round_trip(
        &cfg,
        &format!("{}/{}/packs/p1", server.endpoint, server.bucket),
        &server.secret,
    )
    .await;
    // Garage is strict about the region.
    let wrong_region = with(&cfg, json!({"region": "us-east-1"})).unwrap();
    let err = cairn_networks::open(&wrong_region)
        .unwrap()
        .health()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("garage"), "{err}");
}

/// A backup to a local directory and an S3 server at once; both hold every
/// object; with the directory gone, restore reads everything from S3.
#[test]
fn backup_to_fs_and_s3_restores_from_either() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut env = Env::with(server.options("objects"));
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 5 << 20);
    text_file(&src.join("b.txt"), 3 << 20, 2);
    let b = env.backup(&[src.to_str().unwrap()]);
    let nets: Vec<(&str, bool)> = b["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["network"].as_str().unwrap(), n["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(nets, vec![("local", true), ("objects", true)]);
    let id = b["backup_id"].as_str().unwrap();
    // The S3 side holds ciphertext only, under the key prefix.
    let s3_files = Env::files_under(&server.root.join(&server.bucket).join("repo"));
    assert!(s3_files
        .iter()
        .any(|f| f.to_string_lossy().contains("/packs/")));
    std::fs::remove_dir_all(env.network_dir("local")).unwrap();
    let out = env.path().join("out");
    let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(r["chunks_from"]["objects"].as_u64().unwrap() > 0, "{r}");
}

/// A corrupted chunk on one network: `health --full` names it, restore still
/// succeeds from the other network, `repair` replaces it, health is back to
/// healthy. A deleted chunk is found from listings alone.
#[test]
fn health_names_damage_and_repair_fixes_it() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        ..Options::default()
    });
    env.start_all();
    let (src, id) = env.back_up_random_file(4 << 20);
    let id = id.as_str();
    let (code, h) = env.health(id, false);
    assert_eq!((code, h["status"].as_str().unwrap()), (0, "healthy"), "{h}");
    assert_eq!(h["integrity"]["sealed_root_matches_digests"], true);
    assert!(
        h["integrity"]["inclusion_proofs_verified"]
            .as_u64()
            .unwrap()
            > 0,
        "{h}"
    );
    assert!(
        health_of(&h, "local")["est_restore_secs"]
            .as_f64()
            .is_some(),
        "{h}"
    );

    // Corrupt one chunk on `local`.
    let chunk = env.largest_chunk("local");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&chunk, &bytes).unwrap();
    let name = chunk.file_name().unwrap().to_string_lossy().into_owned();
    let (code, h) = env.health(id, true);
    assert_eq!(
        (code, h["status"].as_str().unwrap()),
        (3, "degraded"),
        "{h}"
    );
    let local = health_of(&h, "local");
    assert!(
        local["corrupt_objects"][0]
            .as_str()
            .unwrap()
            .contains(&name),
        "{h}"
    );
    assert!(
        h["recommendations"][0]
            .as_str()
            .unwrap()
            .contains("cairn repair"),
        "{h}"
    );
    let out = env.path().join("out");
    env.ok(&["restore", id, "--to", out.to_str().unwrap()]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));

    let r = env.json(&["repair", id, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["repaired"][0]["objects_copied"], 1, "{r}");
    let (code, h) = env.health(id, true);
    assert_eq!((code, h["status"].as_str().unwrap()), (0, "healthy"), "{h}");

    // Delete a chunk on `second`: the listing shows it gone.
    let gone = env.data_objects("second").pop().unwrap();
    std::fs::remove_file(&gone).unwrap();
    let (code, h) = env.health(id, false);
    assert_eq!(code, 3, "{h}");
    assert_eq!(health_of(&h, "second")["missing"], 1, "{h}");
    env.ok(&["repair", "--all"]);
    assert!(gone.exists());
    let (code, _) = env.health(id, false);
    assert_eq!(code, 0);
    env.ok(&["audit", "verify"]);
}

/// A backup to three real networks at once (a directory, an S3 server and
/// an IPFS node); the IPFS node is killed in the middle of it: the backup
/// completes degraded, naming that network, with the other two whole; once
/// the node is back, `repair` re-replicates and the backup is completed and
/// healthy.
#[test]
fn network_down_mid_backup_then_repair() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path());
    let mut node = IpfsServer::start(dir.path());
    let pins = PinningServer::start(dir.path());
    let token_file = dir.path().join("pinning-token");
    std::fs::write(&token_file, &pins.token).unwrap();
    let mut opts = s3.options("objects");
    // Cairn's own crates log at debug: secrets must not show even there.
    opts.env
        .push(("CAIRN_TELEMETRY__LOG".into(), "info,cairn=debug".into()));
    let secrets = [s3.secret_key.clone(), pins.token.clone()];
    opts.extra_toml.push_str(&node.network_toml("ipfs"));
    opts.extra_toml.push_str(&format!(
        "pinning_endpoint = \"{}\"\npinning_token_file = \"{}\"\n",
        pins.endpoint,
        token_file.display()
    ));
    let mut env = Env::with(Options {
        verify_timeout_secs: 10,
        max_deliver: 3,
        ..opts
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 48 << 20);
    let mut cmd = env.cmd();
    cmd.args(["backup", "--json", src.to_str().unwrap()]);
    let child = Guarded::spawn(cmd);
    let db = env.db.clone();
    wait_for(60, "a few chunks on the IPFS network", || {
        (psql(
            &db,
            "select count(*) from chunk_copies where network = 'ipfs'",
        )
        .parse::<u64>()
        .unwrap()
            >= 2)
            .then_some(())
    });
    node.stop();
    let out = child.wait_output();
    let v = degraded_outcome(&out);
    assert_eq!(v["status"], "degraded");
    assert!(v["reasons"].to_string().contains("network ipfs"), "{v}");
    let ok: Vec<(&str, bool)> = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["network"].as_str().unwrap(), n["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        ok,
        vec![("local", true), ("objects", true), ("ipfs", false)],
        "{v}"
    );
    let id = v["backup_id"].as_str().unwrap().to_string();
    assert_eq!(env.json(&["show", &id, "--json"])["status"], "degraded");

    node.restart();
    let r = env.json(&["repair", &id, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["repaired"][0]["objects_copied"].as_u64().unwrap() > 0,
        "{r}"
    );
    let (code, h) = env.health(&id, true);
    assert_eq!(code, 0, "{h}");
    assert_eq!(health_of(&h, "ipfs")["missing"], 0, "{h}");
    // Every object on the node has exactly one remote pin request, even
    // those whose first put died with the node; health reports them.
    let remote = pins.pins();
    let names: std::collections::BTreeSet<&str> = remote
        .iter()
        .map(|p| p["pin"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), remote.len(), "duplicate pin requests");
    let reported: u64 = health_of(&h, "ipfs")["remote_copies"]
        .as_object()
        .unwrap_or_else(|| panic!("no remote_copies: {h}"))
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(reported, remote.len() as u64, "{h}");
    assert!(
        reported >= health_of(&h, "ipfs")["objects"].as_u64().unwrap(),
        "{h}"
    );
    wait_for(
        30,
        "the ledger to record the repaired backup as completed",
        || (env.json(&["show", &id, "--json"])["status"] == "completed").then_some(()),
    );
    // With the directory and the S3 server gone, IPFS alone restores it.
    std::fs::remove_dir_all(env.network_dir("local")).unwrap();
    drop(s3);
    let out = env.path().join("out");
    let r = env.json(&["restore", &id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(r["chunks_from"]["ipfs"].as_u64().unwrap() > 0, "{r}");

    // Neither the S3 secret nor the pinning token is in any log, command
    // output or file of the run (config, networks, ledger dumps aside: the
    // secrets only ever lived in the environment and a file outside it).
    let logs = Env::files_under(&env.logs_dir());
    let logged: usize = logs
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len() as usize)
        .sum();
    assert!(
        logged > 10_000,
        "the logs are nearly empty ({logged} bytes)"
    );
    for f in Env::files_under(env.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in {}",
                f.display()
            );
        }
    }
}

/// `cairn serve store --network NAME`: one store worker per network, each
/// in its own process; with one of them stopped, backups still complete on
/// the other network and end degraded naming the stopped one.
#[test]
fn one_store_worker_process_per_network() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into()],
        verify_timeout_secs: 8,
        ..Options::default()
    });
    env.init();
    env.serve(&["ingest", "encrypt", "verify", "ledger", "retention"]);
    env.serve(&["store", "--network", "local"]);
    let second = env.serve(&["store", "--network", "second"]);
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 2 << 20);
    let b = env.backup(&[src.to_str().unwrap()]);
    let held = |net: &str| env.data_objects(net).len();
    assert!(held("local") > 0 && held("second") == held("local"), "{b}");

    env.worker(second).kill9();
    random_file(&src.join("b.bin"), 1 << 20);
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let v = degraded_outcome(&o);
    assert!(v["reasons"].to_string().contains("network second"), "{v}");
    let local = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "local")
        .unwrap();
    assert_eq!(local["ok"], true, "{v}");
}

/// A network that stops answering (its server frozen) holds back only
/// itself: the other network receives every object, the backup ends
/// degraded within the verify timeout, and a restore reads from the network
/// that answers, without waiting on the frozen one.
#[test]
fn a_frozen_network_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut opts = server.options("objects");
    // The automatic repair looks every 2 s (then backs off while it fails).
    opts.env
        .push(("CAIRN_REPAIR__INTERVAL_SECS".into(), "2".into()));
    let mut env = Env::with(Options {
        verify_timeout_secs: 12,
        ..opts
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 8 << 20);
    server.freeze(true);
    let started = std::time::Instant::now();
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let took = started.elapsed();
    let v = degraded_outcome(&o);
    let local = v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "local")
        .unwrap();
    assert_eq!(local["ok"], true, "{v}");
    assert!(
        took < std::time::Duration::from_secs(40),
        "backup took {took:?}"
    );
    let id = v["backup_id"].as_str().unwrap();
    let out = env.path().join("out");
    let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(r["chunks_from"].get("objects").is_none(), "{r}");
    // Once the server answers again, the automatic repair (`serve all`
    // runs it) copies what it lacks, with nobody running `cairn repair`.
    server.freeze(false);
    wait_for(120, "the automatic repair to complete the backup", || {
        (env.json(&["show", id, "--json"])["status"] == "completed").then_some(())
    });
    let (code, h) = env.health(id, true);
    assert_eq!(code, 0, "{h}");
}

/// A network with a quota takes no more than it, as the ledger counts:
/// a stream (whose size nobody knows before it is read) ends degraded
/// naming the quota, and repair copies back no more than the quota lets
/// the network hold.
#[test]
fn quota_is_respected() {
    let mut env = Env::with(Options {
        extra_toml: "\n[[networks]]\nname = \"small\"\nkind = \"fs\"\nquota_bytes = 1000000\n"
            .into(),
        verify_timeout_secs: 10,
        max_deliver: 2,
        ..Options::default()
    });
    env.start_all();
    let mut data = vec![0u8; 3 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    let o = env.run_with(
        env.cmd(),
        &["backup", "--stdin", "--dataset", "piped", "--json"],
        Some(&data),
    );
    let outcome = degraded_outcome(&o);
    let id = outcome["backup_id"].as_str().unwrap().to_string();
    // What the quota counts: the objects Cairn records (not the
    // repository's config and key files).
    let used = || -> u64 {
        ["chunks", "packs", "backups", "datakeys", "datasets"]
            .iter()
            .flat_map(|d| Env::files_under(&env.network_dir("small").join(d)))
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    };
    assert!(
        used() <= 1_000_000,
        "the network holds {} bytes, over its quota",
        used()
    );
    let dead = env.serve_logs();
    assert!(
        dead.contains("is at its quota") && dead.contains("as the ledger counts them"),
        "no quota reason in the serve log"
    );
    let o = env.run(&["repair", &id, "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("repair: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(r["ok"], false, "{r}");
    let problems = r["repaired"][0]["problems"].to_string();
    assert!(
        problems.contains("not copied back") && problems.contains("quota_bytes"),
        "{problems}"
    );
    assert!(
        used() <= 1_000_000,
        "repair took the network to {} bytes, over its quota",
        used()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn arweave_network_conforms_against_arlocal() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| ArweaveServer::start(dir.path()));
    let cfg = net_config(
        json!({"name": "arweave", "kind": "arweave", "endpoint": server.endpoint,
        "wallet_file": server.wallet, "mine": true,
        "key_prefix": format!("repo-{}", hex::encode(rand::random::<[u8; 4]>()))}),
    );
    let net = cairn_networks::open(&cfg).unwrap();
    let address = arweave_address(&cfg);
    tokio::task::block_in_place(|| server.mint(&address));
    conformance(net).await;
    // A fresh instance (no cache) finds everything through GraphQL, the
    // newest version of an overwritten object included.
    let fresh = cairn_networks::open(&cfg).unwrap();
    assert_eq!(
        fresh.get("backups/b1/manifest").await.unwrap().as_ref(),
        b"v2"
    );
    // An object above the inline limit goes up as signed chunks.
    let large: Vec<u8> = (0..cairn_networks::arweave::INLINE_MAX + 300_000)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect();
    fresh
        .put(
            "chunks/ee/large",
            bytes::Bytes::from(large.clone()),
            PutMode::IfAbsent,
        )
        .await
        .unwrap();
    let back = cairn_networks::open(&cfg)
        .unwrap()
        .get("chunks/ee/large")
        .await
        .unwrap();
    assert!(
        back.as_ref() == large.as_slice(),
        "chunked upload read back differs"
    );
    assert_eq!(
        fresh.list("backups/b1/").await.unwrap(),
        vec!["backups/b1/manifest".to_string()]
    );

    // Confirmations: with `confirmations = 1` a put returns only once its
    // transaction is mined with one block on top; past `confirm_timeout`
    // it fails naming the transaction, and the retry waits on that same
    // transaction instead of paying for a second one.
    let waiting = with(
        &cfg,
        json!({"mine": false, "confirmations": 1, "confirm_timeout_secs": 2}),
    )
    .unwrap();
    let before = fresh.usage().await.unwrap().objects;
    let net = cairn_networks::open(&waiting).unwrap();
    let err = net
        .put(
            "chunks/c1/slow",
            Bytes::from_static(b"slow"),
            PutMode::IfAbsent,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("still pending") && err.contains("transaction"),
        "{err}"
    );
    let patient =
        cairn_networks::open(&with(&waiting, json!({"confirm_timeout_secs": 60})).unwrap())
            .unwrap();
    let put = tokio::spawn(async move {
        patient
            .put(
                "chunks/c1/slow",
                Bytes::from_static(b"slow"),
                PutMode::IfAbsent,
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!put.is_finished(), "returned while pending");
    tokio::task::block_in_place(|| server.mine());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!put.is_finished(), "returned with 0 confirmations");
    tokio::task::block_in_place(|| server.mine());
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), put)
        .await
        .expect("put returns after the second block")
        .unwrap()
        .unwrap();
    assert_eq!(done, Put::Existed, "the retry reused the first transaction");
    assert_eq!(
        fresh.usage().await.unwrap().objects,
        before + 1,
        "one transaction for the object, not two"
    );
    assert_eq!(fresh.get("chunks/c1/slow").await.unwrap().as_ref(), b"slow");
}

/// The whole pipeline to a local directory and Arweave at once: both hold
/// the backup; with the directory gone it restores from Arweave alone; and
/// forgetting it cannot delete from the permanent network, which it says.
#[test]
fn backup_to_arweave_restores_and_forget_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ArweaveServer::start(dir.path());
    let repo_tag = format!("repo-{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut env = Env::with(Options {
        extra_toml: format!(
            "\n[[networks]]\nname = \"permaweb\"\nkind = \"arweave\"\nendpoint = \"{}\"\nwallet_file = \"{}\"\nkey_prefix = \"{repo_tag}\"\nmine = true\n\n[datasets.perm]\nshreddable = false\n",
            server.endpoint,
            server.wallet.display()
        ),
        ..Options::default()
    });
    let address = arweave_address(&net_config(json!({"name": "permaweb", "kind": "arweave",
        "endpoint": server.endpoint, "wallet_file": server.wallet})));
    server.mint(&address);
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 2 << 20);
    text_file(&src.join("b.txt"), 500_000, 3);
    // Not shreddable: its key goes to the permaweb too, so that the
    // permaweb alone restores it (a shreddable dataset's key never does).
    let b = env.backup(&["--dataset", "perm", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap();
    std::fs::remove_dir_all(env.network_dir("local")).unwrap();
    let out = env.path().join("out");
    let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(r["chunks_from"]["permaweb"].as_u64().unwrap() > 0, "{r}");
    let f = env.json(&["forget", id, "--json"]);
    assert_eq!(f["retained_on"], serde_json::json!(["permaweb"]), "{f}");
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    let perma = g["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "permaweb")
        .unwrap();
    assert_eq!(perma["outcome"], "skipped", "{g}");
}

fn ipfs_config(
    node: &IpfsServer,
    pins: Option<(&PinningServer, &std::path::Path)>,
) -> NetworkConfig {
    let (pinning_endpoint, pinning_token_file) = match pins {
        Some((p, token_file)) => {
            std::fs::write(token_file, format!("{}\n", p.token)).unwrap();
            (Some(p.endpoint.clone()), Some(token_file.to_path_buf()))
        }
        None => (None, None),
    };
    net_config(
        json!({"name": "ipfs", "kind": "ipfs", "endpoint": node.endpoint(), "key_prefix": "repo",
        "pinning_endpoint": pinning_endpoint, "pinning_token_file": pinning_token_file}),
    )
}

/// The wallet address of an Arweave network's configuration.
fn arweave_address(cfg: &NetworkConfig) -> String {
    let cairn_networks::Kind::Arweave(a) = &cfg.kind else {
        panic!("not arweave: {cfg:?}")
    };
    cairn_networks::arweave::ArweaveNetwork::new(&cfg.name, a)
        .unwrap()
        .address()
        .to_string()
}

/// The IPFS adapter against a real node (js-ipfs, Kubo RPC API) with a real
/// Pinning Service API server: the conformance suite, then what is IPFS's
/// own: the CID is the locator and is checked on read, every object has one
/// remote pin, a gc keeps everything, a tampered block is named.
#[tokio::test(flavor = "multi_thread")]
async fn ipfs_network_conforms_against_a_node_with_a_pinning_service() {
    use cairn_networks::ipfs::{unixfs::file_cid, Cid};
    let dir = tempfile::tempdir().unwrap();
    let (mut node, pins) = tokio::task::block_in_place(|| {
        (
            IpfsServer::start(dir.path()),
            PinningServer::start(dir.path()),
        )
    });
    let token_file = dir.path().join("pinning-token");
    let cfg = ipfs_config(&node, Some((&pins, &token_file)));
    let net = cairn_networks::open(&cfg).unwrap();
    conformance(net.clone()).await;

    // What is left: two manifests (b1 overwritten to v2), the config; the
    // chunk was deleted. MFS names each by the CID of its bytes, and the
    // pinning service holds exactly one pin per object, with that CID.
    let remote = tokio::task::block_in_place(|| pins.pins());
    for (path, content) in [
        ("backups/b1/manifest", &b"v2"[..]),
        ("backups/b2/manifest", b"x"),
        ("config", b"{}"),
    ] {
        let stat: serde_json::Value = serde_json::from_str(&tokio::task::block_in_place(|| {
            node.rpc(&format!("files/stat?arg=/cairn/repo/{path}"))
        }))
        .unwrap();
        let cid = Cid::try_from(stat["Hash"].as_str().unwrap()).unwrap();
        assert_eq!(cid, file_cid(content), "{path}: the CID is the content's");
        let named: Vec<_> = remote
            .iter()
            .filter(|p| p["pin"]["name"] == format!("repo/{path}").as_str())
            .collect();
        assert_eq!(named.len(), 1, "{path}: one remote pin: {named:?}");
        assert_eq!(
            Cid::try_from(named[0]["pin"]["cid"].as_str().unwrap()).unwrap(),
            cid,
            "{path}: the remote pin is for the current content"
        );
    }
    assert!(
        !remote
            .iter()
            .any(|p| p["pin"]["name"] == "repo/chunks/ab/abcdef"),
        "a deleted object keeps no remote pin"
    );
    assert_eq!(remote.len(), 3, "no stray pins: {remote:?}");
    let counts = net.remote_copies().await.unwrap().unwrap();
    assert_eq!(counts.values().sum::<u64>(), 3, "{counts:?}");

    // An object of several 1 MiB blocks: the node's tree CID is the one
    // computed locally (the put refuses any other), and it reads back.
    let large: Vec<u8> = (0..3 * (1 << 20) + 12345)
        .map(|i: usize| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    net.put(
        "chunks/ee/large",
        Bytes::from(large.clone()),
        PutMode::IfAbsent,
    )
    .await
    .unwrap();
    assert!(net.get("chunks/ee/large").await.unwrap().as_ref() == large.as_slice());
    let part = net
        .get_range("chunks/ee/large", (1 << 20) - 5, 10)
        .await
        .unwrap();
    assert_eq!(part.as_ref(), &large[(1 << 20) - 5..(1 << 20) + 5]);

    // A garbage collection on the node keeps everything Cairn stored (MFS
    // holds it), and Cairn leaves no local pins behind.
    let local_pins =
        tokio::task::block_in_place(|| node.rpc("pin/ls?type=recursive&cid-base=base32"));
    assert!(
        !local_pins.contains(&file_cid(&large).to_string()),
        "local pin left behind: {local_pins}"
    );
    tokio::task::block_in_place(|| node.rpc("repo/gc?quiet=true"));
    assert!(net.get("chunks/ee/large").await.unwrap().as_ref() == large.as_slice());
    assert_eq!(net.get("config").await.unwrap().as_ref(), b"{}");

    // A block changed on the node's disk: the node serves it as it is; the
    // adapter refuses it, naming the CID.
    let object: Vec<u8> = (0..5000).map(|_| rand::random::<u8>()).collect();
    net.put(
        "chunks/cd/victim",
        Bytes::from(object.clone()),
        PutMode::IfAbsent,
    )
    .await
    .unwrap();
    let block = Env::files_under(&node.dir.join("blocks"))
        .into_iter()
        .find(|f| std::fs::read(f).map(|b| b == object).unwrap_or(false))
        .expect("the object's block file");
    let mut bad = object.clone();
    bad[100] ^= 1;
    std::fs::write(&block, &bad).unwrap();
    let err = net.get("chunks/cd/victim").await.unwrap_err().to_string();
    assert!(
        err.contains("does not match its CID") && err.contains(&file_cid(&object).to_string()),
        "{err}"
    );

    // A wrong token: health says the pinning service refused, and never
    // shows the token.
    std::fs::write(&token_file, "not-the-token\n").unwrap();
    let wrong = cairn_networks::open(&cfg).unwrap();
    let err = wrong.health().await.unwrap_err().to_string();
    assert!(
        err.contains("pinning service") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "the token leaked: {err}");
    let err = wrong
        .put(
            "chunks/ff/new",
            Bytes::from_static(b"new"),
            PutMode::IfAbsent,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pinning service"), "{err}");
    assert!(
        !net.exists("chunks/ff/new").await.unwrap(),
        "an object whose remote pin failed is not in MFS (its put will be retried)"
    );

    // A node at its storage limit: health says so before writes fail.
    tokio::task::block_in_place(|| node.rpc("config?arg=Datastore.StorageMax&arg=1KB"));
    let err = net.health().await.unwrap_err().to_string();
    assert!(err.contains("repository is full"), "{err}");
    tokio::task::block_in_place(|| node.rpc("config?arg=Datastore.StorageMax&arg=10GB"));
    net.health().await.unwrap();

    // Incomplete settings are refused when the network is opened, saying
    // what is missing.
    for (change, want) in [
        (json!({"endpoint": null}), "missing field `endpoint`"),
        (json!({"endpoint": ""}), "RPC endpoint"),
        (
            json!({"pinning_token_file": null}),
            "CAIRN_IPFS_PINNING_TOKEN",
        ),
        (json!({"key_prefix": "../up"}), "not a valid MFS name"),
        (json!({"pinnig_endpoint": "http://x"}), "`pinnig_endpoint`"),
    ] {
        let err = match with(&cfg, change) {
            Err(e) => e,
            Ok(bad) => cairn_networks::open(&bad)
                .err()
                .expect("refused")
                .to_string(),
        };
        assert!(err.contains(want) && err.contains("ipfs"), "{err}");
    }

    // The node down: a clear error naming the network, not a hang.
    tokio::task::block_in_place(|| node.stop());
    let err = net.get("config").await.unwrap_err().to_string();
    assert!(err.contains("network ipfs"), "{err}");
    assert!(net.health().await.is_err());
}

/// S3 Object Lock against moto (the one local S3 server that implements it):
/// every object is written locked; nobody can delete a locked version, so a
/// delete only hides the object; a chunk a later backup shares gets its lock
/// extended; a bucket without Object Lock is refused by health.
#[tokio::test(flavor = "multi_thread")]
async fn s3_object_lock_against_moto() {
    let dir = tempfile::tempdir().unwrap();
    let moto = tokio::task::block_in_place(|| {
        let m = MotoServer::start(dir.path());
        m.create_bucket("locked", true);
        m.create_bucket("plain", false);
        m
    });
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test\n").unwrap();
    let cfg = net_config(
        json!({"name": "vault", "kind": "s3", "endpoint": moto.endpoint,
        "bucket": "locked", "access_key_id": "test", "secret_access_key_file": secret,
        "object_lock_days": 30}),
    );
    let curl = |method: &str, path: &str, headers: &[&str]| {
        tokio::task::block_in_place(|| {
            s3_curl(
                method,
                &format!("{}/locked/{path}", moto.endpoint),
                "us-east-1",
                "test",
                "test",
                headers,
            )
        })
    };
    let days_left = |resp: &str| -> i64 {
        let until = header(resp, "x-amz-object-lock-retain-until-date").expect("locked");
        let out = Command::new("date")
            .args(["-d", &until, "+%s"])
            .output()
            .unwrap();
        let t: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        (t - now) / 86_400
    };
    let net = cairn_networks::open(&cfg).unwrap();
    net.health().await.unwrap();
    net.put(
        "chunks/aa/one",
        Bytes::from_static(b"sealed bytes"),
        PutMode::IfAbsent,
    )
    .await
    .unwrap();
    let head = curl("HEAD", "chunks/aa/one", &[]);
    assert_eq!(
        header(&head, "x-amz-object-lock-mode").as_deref(),
        Some("COMPLIANCE"),
        "{head}"
    );
    assert!((29..=30).contains(&days_left(&head)), "{head}");
    // Multipart uploads are locked too.
    let big: Vec<u8> = (0..11 << 20).map(|i: usize| (i % 253) as u8).collect();
    let multi =
        cairn_networks::open(&with(&cfg, json!({"multipart_part_bytes": 5 << 20})).unwrap())
            .unwrap();
    multi
        .put("packs/big", Bytes::from(big.clone()), PutMode::IfAbsent)
        .await
        .unwrap();
    assert!(multi.get("packs/big").await.unwrap().as_ref() == big.as_slice());
    let head = curl("HEAD", "packs/big", &[]);
    assert_eq!(
        header(&head, "x-amz-object-lock-mode").as_deref(),
        Some("COMPLIANCE"),
        "{head}"
    );

    // An object locked for only one more day (written by hand): a backup
    // that shares it extends the lock to the full period.
    let soon = Command::new("date")
        .args(["-u", "-d", "+1 day", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let soon = String::from_utf8_lossy(&soon.stdout).trim().to_string();
    let put = curl(
        "PUT",
        "chunks/bb/shared",
        &[
            "x-amz-object-lock-mode: COMPLIANCE",
            &format!("x-amz-object-lock-retain-until-date: {soon}"),
            "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==",
        ],
    );
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    assert!(days_left(&curl("HEAD", "chunks/bb/shared", &[])) <= 1);
    assert_eq!(
        net.put("chunks/bb/shared", Bytes::new(), PutMode::IfAbsent)
            .await
            .unwrap(),
        Put::Existed
    );
    assert!(days_left(&curl("HEAD", "chunks/bb/shared", &[])) >= 29);

    // Delete hides the object; its locked version stays, and deleting that
    // version is refused to anyone.
    net.delete("chunks/aa/one").await.unwrap();
    assert!(!net.exists("chunks/aa/one").await.unwrap());
    let versions = tokio::task::block_in_place(|| {
        s3_curl(
            "GET",
            &format!("{}/locked?versions&prefix=chunks/aa/one", moto.endpoint),
            "us-east-1",
            "test",
            "test",
            &[],
        )
    });
    let version = versions
        .split("<VersionId>")
        .nth(1)
        .and_then(|v| v.split("</VersionId>").next())
        .expect("a version")
        .to_string();
    let del = curl("DELETE", &format!("chunks/aa/one?versionId={version}"), &[]);
    assert!(del.contains("403") && del.contains("AccessDenied"), "{del}");

    // A bucket without Object Lock: health says so.
    let plain = cairn_networks::open(&with(&cfg, json!({"bucket": "plain"})).unwrap()).unwrap();
    let err = plain.health().await.unwrap_err().to_string();
    assert!(
        err.contains("no Object Lock") && err.contains("plain"),
        "{err}"
    );
    // Bad settings are refused when the network is opened.
    for (days, mode, want) in [
        (Some(0), None, "at least 1"),
        (Some(5), Some("forever"), "compliance"),
        (None, Some("governance"), "needs object_lock_days"),
    ] {
        let err = match with(
            &cfg,
            json!({"object_lock_days": days, "object_lock_mode": mode}),
        ) {
            Err(e) => e,
            Ok(bad) => cairn_networks::open(&bad)
                .err()
                .expect("refused")
                .to_string(),
        };
        assert!(err.contains(want), "{err}");
    }
}

/// A network that cannot list (its S3 server stopped) leaves the collector
/// unable to establish what is still referenced: it deletes nothing on any
/// network, says which network and why, exits 1, and every backup still
/// restores byte-identical from every network. Once the network is back, the
/// collection goes ahead.
#[test]
fn gc_deletes_nothing_when_a_network_cannot_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(dir.path());
    let mut env = Env::with(server.options("objects"));
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("common.bin"), 3 << 20);
    let b1 = env.backup(&[src.to_str().unwrap()]);
    random_file(&src.join("second.bin"), 2 << 20);
    let b2 = env.backup(&[src.to_str().unwrap()]);
    let (id1, id2) = (
        b1["backup_id"].as_str().unwrap().to_string(),
        b2["backup_id"].as_str().unwrap().to_string(),
    );
    // The second backup is forgotten: only it used second.bin's chunks.
    env.ok(&["forget", &id2]);
    let local_chunks = || env.data_objects("local").len();
    let bucket = server.root.join(&server.bucket);
    let s3_objects = || Env::files_under(&bucket).len();
    let (before_local, before_s3) = (local_chunks(), s3_objects());

    server.stop();
    let o = env.run(&["gc", "--grace", "0s"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "gc went ahead: {text}");
    assert!(
        text.contains("local: aborted")
            && text.contains("network objects")
            && text.contains("nothing was deleted"),
        "{text}"
    );
    assert_eq!(local_chunks(), before_local, "gc deleted from local");
    server.restart();
    assert_eq!(s3_objects(), before_s3);
    std::fs::remove_file(src.join("second.bin")).unwrap();
    let b1_tree = snapshot(&src);
    for net in ["local", "objects"] {
        let r1 = env.restore_from_only(net, &id1);
        assert_eq!(snapshot(&r1.join("src")), b1_tree, "backup 1 from {net}");
    }

    // Back up: the collection frees what only the second backup held, and
    // the first still restores from each network alone.
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
        assert!(n["deleted"].as_u64().unwrap() >= 2, "{g}");
    }
    assert!(local_chunks() < before_local);
    for net in ["local", "objects"] {
        let r1 = env.restore_from_only(net, &id1);
        assert_eq!(
            snapshot(&r1.join("src")),
            b1_tree,
            "backup 1 from {net} after gc"
        );
    }
}

/// A network added to the configuration after `cairn init` gets the
/// repository config and key files: `cairn health` reports it lacks them,
/// `cairn init` run again copies them, and so does the network's store
/// worker when it starts; then the network alone restores what it holds.
#[test]
fn a_network_added_after_init_gets_the_repository() {
    let mut env = Env::new();
    env.init();
    let all = env.serve(&["all"]);
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 2 << 20);
    let b1 = env.backup(&[src.to_str().unwrap()]);
    env.worker(all).kill9();
    let add = |env: &Env, name: &str| {
        let mut cfg = std::fs::read_to_string(&env.config).unwrap();
        cfg.push_str(&format!(
            "\n[[networks]]\nname = \"{name}\"\nkind = \"fs\"\n"
        ));
        std::fs::write(&env.config, cfg).unwrap();
    };

    // Added: health names what it lacks, and init copies it there.
    add(&env, "late");
    let o = env.run(&["health", b1["backup_id"].as_str().unwrap(), "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let late = h["repository"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["network"] == "late")
        .unwrap()
        .clone();
    assert_eq!(late["holds"]["config"], false, "{h}");
    assert!(
        h["recommendations"]
            .to_string()
            .contains("network late lacks"),
        "{h}"
    );
    let out = env.ok(&["init"]);
    assert!(out.contains("to network late"), "{out}");
    assert!(env.network_dir("late").join("config").exists());
    assert!(!Env::files_under(&env.network_dir("late").join("keys")).is_empty());
    let o = env.run(&["init"]);
    assert!(
        !o.status.success(),
        "a second init must say there is nothing to do"
    );

    // Added again: the store worker copies it when it starts.
    add(&env, "later");
    env.serve(&["all"]);
    wait_for(30, "the store worker to copy the repository files", || {
        env.network_dir("later")
            .join("config")
            .exists()
            .then_some(())
    });
    random_file(&src.join("b.bin"), 1 << 20);
    let b2 = env.backup(&[src.to_str().unwrap()]);
    let id2 = b2["backup_id"].as_str().unwrap();
    for net in ["local", "late", "later"] {
        let dir = env.restore_from_only(net, id2);
        assert_eq!(snapshot(&dir.join("src")), snapshot(&src), "from {net}");
    }
    let (_, h) = env.health(id2, false);
    assert_eq!(h["status"], "healthy", "{h}");
}
