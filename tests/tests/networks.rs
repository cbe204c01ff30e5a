//! One conformance suite for every `Network` implementation, run against a
//! real server of each protocol: a local directory, and `s3s-fs` (a real S3
//! server with SigV4) for the S3 adapter. Then backups through the whole
//! pipeline to a directory and an S3 server at once.

use bytes::Bytes;
use cairn_config::NetworkConfig;
use cairn_networks::{DynNetwork, NetworkError, Put, PutMode};
use cairn_tests::*;

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
    net.delete(p).await.unwrap();
    assert!(!net.exists(p).await.unwrap(), "{name}: delete");
    net.delete(p).await.unwrap(); // deleting twice is fine
    for bad in ["/etc/passwd", "../x", "a//b", ""] {
        assert!(
            matches!(net.get(bad).await, Err(NetworkError::BadPath { .. })),
            "{name}: {bad}"
        );
    }
}

fn s3_config(s: &S3Server, name: &str) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        kind: "s3".into(),
        endpoint: Some(s.endpoint()),
        bucket: Some(s.bucket.clone()),
        access_key_id: Some(s.access_key.clone()),
        key_prefix: Some("repo".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn fs_network_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig {
        name: "dir".into(),
        kind: "fs".into(),
        path: Some(dir.path().join("net")),
        ..Default::default()
    };
    conformance(cairn_networks::open(&cfg).unwrap()).await;
}

#[tokio::test]
async fn s3_network_conforms_against_s3s_fs() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", server.secret_key)).unwrap();
    let mut cfg = s3_config(&server, "s3one");
    cfg.secret_access_key_file = Some(secret.clone());
    conformance(cairn_networks::open(&cfg).unwrap()).await;
    // Objects live under the key prefix, in the bucket's directory.
    assert!(server.root.join(&server.bucket).join("repo").exists());

    // Wrong credentials: a clear error naming the network, not a hang.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-the-secret").unwrap();
    let mut wrong = s3_config(&server, "s3wrong");
    wrong.secret_access_key_file = Some(bad);
    let err = cairn_networks::open(&wrong)
        .unwrap()
        .health()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3wrong"), "{err}");
    // No credentials at all: refused at configuration time, saying where to put them.
    let mut none = s3_config(&server, "s3none");
    none.access_key_id = None;
    let err = cairn_networks::open(&none)
        .err()
        .expect("no credentials")
        .to_string();
    assert!(err.contains("access key id"), "{err}");
}

/// A backup to a local directory and an S3 server at once; both hold every
/// object; with the directory gone, restore reads everything from S3.
#[test]
fn backup_to_fs_and_s3_restores_from_either() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let mut env = Env::with(Options {
        extra_toml: server.network_toml("objects"),
        env: vec![(
            "CAIRN_OBJECTS_SECRET_ACCESS_KEY".into(),
            server.secret_key.clone(),
        )],
        ..Options::default()
    });
    env.init();
    env.serve(&["all"]);
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
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
        .any(|f| f.to_string_lossy().contains("/chunks/")));
    std::fs::remove_dir_all(env.network_dir("local")).unwrap();
    let out = env.path().join("out");
    let r = env.json(&["restore", id, "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    assert!(r["chunks_from"]["objects"].as_u64().unwrap() > 0, "{r}");
}
