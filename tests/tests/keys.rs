//! Key custody end to end, through the `cairn` binary against a real
//! nats-server, PostgreSQL and directory networks (one that cannot delete):
//! several passphrases, removing one, threshold shares, and bad keys of
//! every kind refused by name without changing any network.

use cairn_tests::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const FAST_KDF: [&str; 4] = ["--kdf-memory-kib", "8192", "--kdf-iterations", "1"];

fn env_with_vault() -> Env {
    Env::with(Options {
        extra_networks: vec!["second".into()],
        // A network that cannot delete (as Arweave): a removed key stays.
        extra_toml: "\n[[networks]]\nname = \"vault\"\nkind = \"fs\"\ncan_delete = false\n".into(),
        ..Options::default()
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `cairn ARGS` with only network `net`, no broker or database, and
/// `pass` as the passphrase (none when `None`).
fn offline(env: &Env, net: &str, pass: Option<&str>, args: &[&str]) -> Output {
    let mut c = env.offline_with_only(net);
    match pass {
        Some(p) => c.env("CAIRN_PASSPHRASE", p),
        None => c.env_remove("CAIRN_PASSPHRASE"),
    };
    env.run_with(c, args, None)
}

fn restore_to(
    env: &Env,
    net: &str,
    pass: Option<&str>,
    id: &str,
    extra: &[&str],
) -> (Output, PathBuf) {
    let n = std::fs::read_dir(env.path()).unwrap().count();
    let out = env.path().join(format!("restored-{n}"));
    let mut args = extra.to_vec();
    args.extend(["restore", id, "--to", out.to_str().unwrap()]);
    (offline(env, net, pass, &args), out)
}

fn networks_of(env: &Env) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    ["local", "second", "vault"]
        .iter()
        .map(|n| (n.to_string(), snapshot(&env.network_dir(n))))
        .collect()
}

fn key_events(env: &Env, kind: &str) -> Vec<serde_json::Value> {
    settle(&env.db);
    logged_events(&env.db)
        .into_iter()
        .filter(|e| e.event.kind() == kind)
        .map(|e| serde_json::to_value(&e.event).unwrap())
        .collect()
}

#[test]
fn several_passphrases_open_the_repository_and_a_removed_one_stays_removed() {
    let mut env = env_with_vault();
    env.start_all();
    let (src, id) = env.back_up_random_file(3 << 20);
    let first_id = env.json(&["key", "list", "--json"])["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();

    let bob_file = env.path().join("bob-pass");
    std::fs::write(&bob_file, "bob's own passphrase\n").unwrap();
    let mut args = vec![
        "key",
        "add",
        "--new-passphrase-file",
        bob_file.to_str().unwrap(),
        "--label",
        "bob",
        "--json",
    ];
    args.extend(FAST_KDF);
    let added = env.json(&args);
    let bob_id = added["key_id"].as_str().unwrap().to_string();
    assert_eq!(
        added["networks"],
        serde_json::json!(["local", "second", "vault"]),
        "{added}"
    );

    let listed = env.json(&["key", "list", "--json"]);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    let first = keys
        .iter()
        .find(|k| k["key_id"] == first_id.as_str())
        .unwrap();
    let bob = keys
        .iter()
        .find(|k| k["key_id"] == bob_id.as_str())
        .unwrap();
    assert_eq!(
        first["current"], true,
        "the passphrase used opened the first key"
    );
    assert_eq!(bob["label"], "bob");
    assert_eq!(bob["networks"].as_array().unwrap().len(), 3);

    // Bob's passphrase opens the repository from one network alone; the
    // vault (it cannot delete) holds no dataset key, so alone it restores
    // nothing, and says why.
    let (o, _) = restore_to(&env, "vault", Some("bob's own passphrase"), &id, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("dataset keys live only on networks that can delete"),
        "{}",
        stderr(&o)
    );
    {
        let net = "second";
        let (o, out) = restore_to(&env, net, Some("bob's own passphrase"), &id, &[]);
        assert!(
            o.status.success(),
            "restore with bob's key from {net}: {}",
            stderr(&o)
        );
        assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    }

    // Bob removes the first passphrase while network `second` is away (its
    // directory replaced by a file): deleted from `local`, kept by the
    // vault, which cannot delete, pending on `second`; exit 3 says so.
    let second = env.network_dir("second");
    let away = env.path().join("second-away");
    std::fs::rename(&second, &away).unwrap();
    std::fs::write(&second, "not a directory").unwrap();
    let mut c = env.cmd();
    c.env("CAIRN_PASSPHRASE", "bob's own passphrase");
    let o = env.run_with(c, &["key", "remove", &first_id, "--json"], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let removed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        removed["networks"],
        serde_json::json!(["local"]),
        "{removed}"
    );
    let pending: Vec<&str> = removed["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["network"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["second", "vault"], "{removed}");
    assert!(removed["pending"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot delete"));
    // `key list` names the network it could not read, and exits 3.
    let mut c = env.cmd();
    c.env("CAIRN_PASSPHRASE", "bob's own passphrase");
    let o = env.run_with(c, &["key", "list", "--json"], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed["unreachable"][0]["network"], "second", "{listed}");
    std::fs::remove_file(&second).unwrap();
    std::fs::rename(&away, &second).unwrap();
    assert!(!env
        .network_dir("local")
        .join("keys")
        .join(&first_id)
        .exists());
    assert!(env
        .network_dir("vault")
        .join("keys")
        .join(&first_id)
        .exists());
    assert!(second.join("keys").join(&first_id).exists());

    // A store worker's start brings the tombstone to `second` (it deletes
    // nothing: without a key it cannot tell a real tombstone from a
    // planted one) and spreads the key file nowhere again.
    env.set_env("CAIRN_PASSPHRASE", "bob's own passphrase");
    env.serve(&["store"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !second.join("keys-removed").join(&first_id).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the tombstone never reached `second`: {}",
            env.serve_logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!env
        .network_dir("local")
        .join("keys")
        .join(&first_id)
        .exists());
    // The old passphrase opens nothing, wherever its key file lingers.
    for (net, why) in [
        ("local", "wrong passphrase"),
        ("second", "was removed"),
        ("vault", "was removed"),
    ] {
        let (o, _) = restore_to(&env, net, Some(PASSPHRASE), &id, &[]);
        assert!(
            !o.status.success(),
            "the removed passphrase still opens {net}"
        );
        assert!(stderr(&o).contains(why), "{net}: {}", stderr(&o));
    }
    // Asked again, `key remove` finishes on `second`.
    let o = env.run(&["key", "remove", &first_id, "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let finished: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        finished["networks"],
        serde_json::json!(["local", "second"]),
        "{finished}"
    );
    assert!(!second.join("keys").join(&first_id).exists());

    // A tombstone planted by whoever can write to one network (no valid
    // tag) removes nothing: bob's key still opens, and is still listed.
    std::fs::write(
        env.network_dir("local").join("keys-removed").join(&bob_id),
        format!("{{\"key_id\":\"{bob_id}\",\"removed_at\":\"0\",\"tag\":\"00\"}}"),
    )
    .unwrap();
    let listed = env.json(&["key", "list", "--json"]);
    let live: Vec<&serde_json::Value> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["removed"] == false)
        .collect();
    assert_eq!(live.len(), 1, "{listed}");
    assert_eq!(live[0]["key_id"], bob_id.as_str());
    assert_eq!(live[0]["current"], true);

    // The last key cannot be removed, and the refusal changes nothing.
    let before = networks_of(&env);
    let o = env.run(&["key", "remove", &bob_id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("last key"), "{}", stderr(&o));
    assert_eq!(networks_of(&env), before);

    let added = key_events(&env, "key.added");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["key_id"], bob_id.as_str());
    let removed = key_events(&env, "key.removed");
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(removed.iter().all(|r| r["key_id"] == first_id.as_str()));
    assert_eq!(removed[0]["networks"], serde_json::json!(["local"]));
    assert_eq!(
        removed[1]["networks"],
        serde_json::json!(["local", "second"])
    );
}

fn shares_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn share_args(files: &[&PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| ["--share".to_string(), f.display().to_string()])
        .collect()
}

#[test]
fn threshold_shares_open_the_repository_and_bad_keys_are_named() {
    let mut env = env_with_vault();
    env.start_all();
    let (src, id) = env.back_up_random_file(2 << 20);
    let dir = env.path().join("shares");
    let split = env.json(&[
        "key",
        "split",
        "--threshold",
        "3",
        "--shares",
        "5",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    let files = shares_in(&dir);
    assert_eq!(files.len(), 5, "{split}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Any three, with no passphrase at all, restore from one network alone.
    for pick in [[0, 1, 2], [4, 2, 0]] {
        let chosen: Vec<&PathBuf> = pick.iter().map(|&i| &files[i]).collect();
        let a = share_args(&chosen);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (o, out) = restore_to(&env, "second", None, &id, &a);
        assert!(o.status.success(), "three shares {pick:?}: {}", stderr(&o));
        assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    }

    let before = networks_of(&env);
    let refused = |what: &str, pass: Option<&str>, files: &[&PathBuf], needle: &[&str]| {
        let a = share_args(files);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (o, out) = restore_to(&env, "local", pass, &id, &a);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what} was not refused: {}",
            stderr(&o)
        );
        for n in needle {
            assert!(
                stderr(&o).contains(n),
                "{what}: {n:?} not in {}",
                stderr(&o)
            );
        }
        assert!(!out.exists(), "{what}: restored something");
    };

    refused(
        "two shares",
        None,
        &[&files[0], &files[3]],
        &["2 key share(s) given", "3 of 5"],
    );

    let damaged = env.path().join("damaged.json");
    let mut text: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    let v = text["value"].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if v.starts_with('0') { "1" } else { "0" }, &v[1..]);
    text["value"] = flipped.into();
    std::fs::write(&damaged, serde_json::to_vec(&text).unwrap()).unwrap();
    refused(
        "a damaged share",
        None,
        &[&files[0], &damaged, &files[2]],
        &["damaged.json", "checksum"],
    );

    let cut = env.path().join("cut.json");
    std::fs::write(&cut, &std::fs::read(&files[1]).unwrap()[..50]).unwrap();
    refused(
        "a truncated share",
        None,
        &[&files[0], &cut, &files[2]],
        &["cut.json", "not a Cairn key share"],
    );

    let other = Env::new();
    other.init();
    let other_dir = other.path().join("shares");
    other.ok(&[
        "key",
        "split",
        "--threshold",
        "2",
        "--shares",
        "2",
        "--out",
        other_dir.to_str().unwrap(),
    ]);
    let foreign = shares_in(&other_dir).remove(0);
    refused(
        "a foreign share",
        None,
        &[&files[0], &foreign, &files[2]],
        &[&foreign.display().to_string(), "belongs to repository"],
    );

    refused(
        "a wrong passphrase",
        Some("not the passphrase"),
        &[],
        &["wrong passphrase"],
    );

    // Key commands refused for want of the key change nothing either.
    let new_pass = env.path().join("new-pass");
    std::fs::write(&new_pass, "another passphrase\n").unwrap();
    let key_id = shares_in(&env.network_dir("local").join("keys"))[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let two = share_args(&[&files[0], &files[1]]);
    let two: Vec<&str> = two.iter().map(String::as_str).collect();
    let more_dir = env.path().join("more-shares");
    for (what, pass, args) in [
        (
            "key add with a wrong passphrase",
            Some("not the passphrase"),
            vec![
                "key",
                "add",
                "--new-passphrase-file",
                new_pass.to_str().unwrap(),
            ],
        ),
        (
            "key remove with a wrong passphrase",
            Some("not the passphrase"),
            vec!["key", "remove", key_id.as_str()],
        ),
        (
            "key split with two shares",
            None,
            [
                two.clone(),
                vec![
                    "key",
                    "split",
                    "--threshold",
                    "2",
                    "--shares",
                    "3",
                    "--out",
                    more_dir.to_str().unwrap(),
                ],
            ]
            .concat(),
        ),
        (
            "key add with two shares",
            None,
            [
                two.clone(),
                vec![
                    "key",
                    "add",
                    "--new-passphrase-file",
                    new_pass.to_str().unwrap(),
                ],
            ]
            .concat(),
        ),
    ] {
        let mut c = env.cmd();
        match pass {
            Some(p) => c.env("CAIRN_PASSPHRASE", p),
            None => c.env_remove("CAIRN_PASSPHRASE"),
        };
        let o = env.run_with(c, &args, None);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("wrong passphrase") || stderr(&o).contains("3 of 5"),
            "{what}: {}",
            stderr(&o)
        );
    }
    assert!(!more_dir.exists() || shares_in(&more_dir).is_empty());

    assert_eq!(
        networks_of(&env),
        before,
        "a refused attempt changed a network"
    );

    // A truncated key file is named (put back whole afterwards).
    let key = shares_in(&env.network_dir("local").join("keys")).remove(0);
    let whole = std::fs::read(&key).unwrap();
    std::fs::write(&key, &whole[..whole.len() / 2]).unwrap();
    let (o, _) = restore_to(&env, "local", Some(PASSPHRASE), &id, &[]);
    std::fs::write(&key, &whole).unwrap();
    assert_eq!(o.status.code(), Some(1));
    let name = key.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains("not a Cairn key file"),
        "{}",
        stderr(&o)
    );

    let splits = key_events(&env, "key.split");
    assert_eq!(splits.len(), 1, "{splits:?}");
    assert_eq!(splits[0]["threshold"], 3);
    assert_eq!(splits[0]["count"], 5);
    assert_eq!(splits[0]["set"], split["set"]);
    // The ledger records the split, never a share.
    let share_value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let needle = share_value["value"].as_str().unwrap().as_bytes().to_vec();
    for entry in logged_entries(&env.db) {
        assert!(!entry.windows(needle.len()).any(|w| w == needle.as_slice()));
    }
}

/// The fingerprint (hex) of the public key a wrapped data key is wrapped to.
/// The key a dataset's key (`datasets/<fingerprint>`: its public key,
/// then its private key wrapped) is wrapped to.
fn wrapped_to(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    hex::encode(cairn_crypto::datakey::recipient(&bytes[32..184]).expect("a dataset key"))
}

fn public_of(net: &Path) -> cairn_crypto::PublicKey {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("config")).unwrap()).unwrap();
    cairn_crypto::PublicKey::from_hex(c["public_key"].as_str().unwrap()).unwrap()
}

#[test]
fn rotation_rewraps_every_data_key_finishes_later_and_retires_the_old_keys() {
    let mut env = Env::with(Options {
        extra_networks: vec!["second".into(), "third".into()],
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 700 << 10);
    text_file(&src.join("b.txt"), 64 << 10, 1);
    let b1 = env.backup(&[src.to_str().unwrap()]);
    let b1 = b1["backup_id"].as_str().unwrap().to_string();
    env.set_env("CAIRN_NEW_PASSPHRASE", "a second passphrase");
    let added = env.json(&["key", "add", "--label", "bob", "--json"]);
    let (old_key, bob) = (
        env.json(&["key", "list", "--json"])["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["current"] == true)
            .unwrap()["key_id"]
            .as_str()
            .unwrap()
            .to_string(),
        added["key_id"].as_str().unwrap().to_string(),
    );
    let local = env.network_dir("local");
    let old_public = public_of(&local);
    let data_before = (
        contents(&local.join("packs")),
        contents(&local.join("backups")),
    );
    // Data keys are wrapped to the dataset's key, which is what a rotation
    // re-wraps: they stay as they are.
    let data_keys_before = contents(&local.join("datakeys"));

    // Rotate while network "third" is away: done where it can be, the old
    // keys kept everywhere until the last network has the new state.
    let third = env.network_dir("third");
    let parked = env.path().join("third-away");
    std::fs::rename(&third, &parked).unwrap();
    std::fs::write(&third, b"not a directory").unwrap();
    env.set_env("CAIRN_NEW_PASSPHRASE", "the rotated passphrase");
    env.ok(&["setup"]);
    let o = env.run(&[
        "key",
        "rotate",
        "--kdf-memory-kib",
        "8192",
        "--kdf-iterations",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["finished"], false, "{r}");
    assert_eq!(r["networks"], serde_json::json!(["local", "second"]), "{r}");
    assert!(r["pending"].to_string().contains("third"), "{r}");
    assert_eq!(
        r["rewrapped"], 2,
        "one dataset key on each of two networks: {r}"
    );
    let new_public = public_of(&local);
    assert_ne!(new_public, old_public);
    assert_eq!(r["public_key"].as_str(), Some(new_public.to_hex().as_str()));
    for net in ["local", "second"] {
        for f in Env::files_under(&env.network_dir(net).join("datasets")) {
            assert_eq!(
                wrapped_to(&f),
                hex::encode(new_public.fingerprint()),
                "{net}"
            );
        }
    }
    // The new passphrase restores from a rotated network alone.
    let out = {
        let mut c = env.offline_with_only("second");
        c.env("CAIRN_PASSPHRASE", "the rotated passphrase");
        let out = env.path().join("restored-rotated-second");
        let o = env.run_with(c, &["restore", &b1, "--to", out.to_str().unwrap()], None);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    // The old passphrase cannot take over the unfinished rotation.
    env.set_env("CAIRN_NEW_PASSPHRASE", "");
    let o = env.run(&["key", "rotate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is unfinished") && stderr(&o).contains("new passphrase"),
        "{}",
        stderr(&o)
    );

    // The network is back: the new passphrase finishes the rotation.
    std::fs::remove_file(&third).unwrap();
    std::fs::rename(&parked, &third).unwrap();
    env.set_env("CAIRN_PASSPHRASE", "the rotated passphrase");
    let r = env.json(&["key", "rotate", "--json"]);
    assert_eq!(r["finished"], true, "{r}");
    assert_eq!(r["rewrapped"], 1, "third's dataset key: {r}");
    let mut dropped: Vec<String> = serde_json::from_value(r["dropped"].clone()).unwrap();
    dropped.sort();
    let mut want = vec![old_key.clone(), bob.clone()];
    want.sort();
    assert_eq!(dropped, want, "{r}");
    for f in Env::files_under(&third.join("datasets")) {
        assert_eq!(wrapped_to(&f), hex::encode(new_public.fingerprint()));
    }
    assert_eq!(contents(&local.join("datakeys")), data_keys_before);
    // No chunk, pack or manifest was written again.
    assert_eq!(
        (
            contents(&local.join("packs")),
            contents(&local.join("backups"))
        ),
        data_before
    );
    // The old passphrases open nothing, on any network; the new one
    // restores from the network that was away, alone.
    for (net, pass) in [
        ("local", PASSPHRASE),
        ("third", PASSPHRASE),
        ("second", "a second passphrase"),
    ] {
        let (o, _) = restore_to(&env, net, Some(pass), &b1, &[]);
        assert!(!o.status.success());
        // Deleted where the network deletes, tombstoned everywhere.
        assert!(
            stderr(&o).contains("was removed") || stderr(&o).contains("wrong passphrase"),
            "{net}: {}",
            stderr(&o)
        );
    }
    let (o, out) = restore_to(&env, "third", Some("the rotated passphrase"), &b1, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    // A backup by a writer still pinning the old key (serve started before
    // the rotation) restores through the retired read key.
    std::fs::write(src.join("c.txt"), b"written after the rotation\n").unwrap();
    // A loaded CI machine has taken more than the default 5 s to start it.
    let b2 = env.backup(&["--start-timeout", "60", src.to_str().unwrap()]);
    let b2 = b2["backup_id"].as_str().unwrap().to_string();
    let (o, out) = restore_to(&env, "local", Some("the rotated passphrase"), &b2, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    // Both runs are in the ledger, the second finished.
    let rotated = key_events(&env, "key.rotated");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert!(rotated.iter().any(|e| e["finished"] == true));
}
