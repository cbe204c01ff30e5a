//! Erasure coding across networks (`redundancy = "erasure k/n"`): each pack
//! becomes one Reed-Solomon shard per network, any `k` of which rebuild it,
//! while the backup's metadata stays whole on every network.

use cairn_tests::env::{Env, Options};
use cairn_tests::fixtures;
use cairn_tests::postgres::psql;
use std::path::{Path, PathBuf};

const NETS: [&str; 5] = ["local", "n2", "n3", "n4", "n5"];

/// Five directory networks; dataset `docs` coded 3/5 over them.
fn five_networks() -> Env {
    Env::with(Options {
        extra_networks: NETS[1..].iter().map(|n| n.to_string()).collect(),
        extra_toml: "\n[datasets.docs]\nredundancy = \"erasure 3/5\"\n".into(),
        ..Options::default()
    })
}

/// A source of incompressible files, large and small.
fn source(env: &Env) -> PathBuf {
    let src = env.source_dir("src");
    fixtures::random_file(&src.join("big.bin"), 3 << 20);
    std::fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..40 {
        fixtures::random_file(&src.join(format!("small/{i}.bin")), 1000 + i * 700);
    }
    src
}

fn pack_files(env: &Env, net: &str) -> Vec<PathBuf> {
    Env::files_under(&env.network_dir(net).join("packs"))
}

fn bytes_of(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

/// Takes a directory network away (as a network that stopped answering),
/// and gives it back.
fn away(env: &Env, net: &str) {
    std::fs::rename(env.network_dir(net), gone(env, net)).unwrap();
}

fn back(env: &Env, net: &str) {
    std::fs::rename(gone(env, net), env.network_dir(net)).unwrap();
}

fn gone(env: &Env, net: &str) -> PathBuf {
    env.path().join(format!("away-{net}"))
}

/// `cairn recover restore` from `nets` alone, no broker, no database.
fn recover_restore(env: &Env, id: &str, nets: &[&str], to: &Path) -> std::process::Output {
    let mut args = vec!["recover", "restore", id];
    for n in nets {
        args.extend(["--network", n]);
    }
    args.extend(["--to", to.to_str().unwrap()]);
    env.run_with(env.offline(), &args, None)
}

/// The tree restored under `out` is `src`, byte for byte.
fn same_tree(out: &Path, src: &Path) {
    assert_eq!(
        fixtures::contents(&out.join("src")),
        fixtures::contents(src)
    );
}

fn restore(env: &Env, id: &str, to: &Path) -> std::process::Output {
    env.run(&["restore", id, "--to", to.to_str().unwrap()])
}

#[test]
fn three_of_five_restores_without_any_two_networks_and_names_what_three_lose() {
    let mut env = five_networks();
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let source_bytes: u64 = bytes_of(&Env::files_under(&src));

    // Every network holds one shard of every pack, not the pack.
    let packs: Vec<Vec<PathBuf>> = NETS.iter().map(|n| pack_files(&env, n)).collect();
    let names = |files: &[PathBuf]| -> Vec<String> {
        let mut v: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(!packs[0].is_empty());
    for (net, files) in NETS.iter().zip(&packs) {
        assert_eq!(names(files), names(&packs[0]), "{net} holds other packs");
        for f in files {
            let head = std::fs::read(f).unwrap();
            assert_eq!(
                &head[..4],
                b"CRNE",
                "{} on {net} is not a shard",
                f.display()
            );
        }
        // Its part is a third of the data, give or take the sealing.
        let held = bytes_of(files);
        assert!(
            held * 3 < source_bytes * 11 / 10 && held * 3 > source_bytes * 9 / 10,
            "{net} holds {held} bytes of packs for {source_bytes} bytes of source"
        );
        // The backup's own objects are whole everywhere.
        for f in ["manifest", "catalogue", "chunks.0"] {
            assert!(
                env.network_dir(net)
                    .join(format!("backups/{id}/{f}"))
                    .exists(),
                "{f} missing on {net}"
            );
        }
    }
    let total: u64 = packs.iter().map(|f| bytes_of(f)).sum();
    println!(
        "erasure 3/5: {total} bytes of shards on five networks for {source_bytes} bytes of source ({:.2}x)",
        total as f64 / source_bytes as f64
    );

    // The ledger knows each pack's five shards and which network holds which.
    let shards = psql(
        &env.db,
        "SELECT count(DISTINCT path) || ' ' || count(*) || ' ' || min(k) || ' ' || max(n) FROM shard_digests",
    );
    assert_eq!(
        shards,
        format!("{} {} 3 5", packs[0].len(), packs[0].len() * 5)
    );
    let copies = psql(
        &env.db,
        "SELECT count(*) FROM (SELECT chunk_id FROM chunk_copies WHERE shard IS NOT NULL
         GROUP BY chunk_id HAVING count(DISTINCT shard) = 5 AND count(DISTINCT network) = 5
           AND min(shard_k) = 3) p",
    );
    assert_eq!(copies, packs[0].len().to_string());

    // Any two networks gone: the backup restores whole.
    env.stop_workers();
    for pair in [["n2", "n4"], ["local", "n5"]] {
        for n in pair {
            away(&env, n);
        }
        let out = env
            .path()
            .join(format!("restored-without-{}", pair.join("-")));
        let o = restore(&env, &id, &out);
        assert!(
            o.status.success(),
            "restore without {pair:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        same_tree(&out, &src);
        for n in pair {
            back(&env, n);
        }
    }

    // The day the broker and the database are gone too: any three networks
    // named restore it with the key alone; two do not, and say why.
    let out = env.path().join("recovered");
    let o = recover_restore(&env, &id, &["n2", "n3", "n5"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
    let o = recover_restore(&env, &id, &["n2", "n3"], &env.path().join("not-recovered"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("2 intact shard(s) of the 3 needed"), "{err}");

    // Three gone: a clear error naming what cannot be rebuilt.
    for n in ["n2", "n3", "n4"] {
        away(&env, n);
    }
    let out = env.path().join("restored-without-three");
    let o = restore(&env, &id, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "restored with three networks gone");
    assert!(
        err.contains("chunk ") && err.contains("2 intact shard(s) of the 3 needed"),
        "{err}"
    );
    for n in ["n2", "n3", "n4"] {
        back(&env, n);
    }

    // A new machine: an empty broker and an empty database. The rebuild
    // finds every network's shard, records the packs' digests and who
    // holds which shard, and health agrees with the networks.
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", env.db),
    );
    env.nats.replace_with_empty();
    env.serve(&["all"]);
    let rebuilt = env.run(&["recover", "rebuild", "--json"]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let (code, h) = env.health(&id, true);
    assert_eq!((code, h["status"].as_str()), (0, Some("healthy")), "{h}");
    assert_eq!(
        h["erasure"]["by_shards_left"]["5"],
        packs[0].len() as u64,
        "{h}"
    );
    let held = psql(
        &env.db,
        "SELECT count(*) FROM chunk_copies WHERE shard IS NOT NULL AND shard_k = 3",
    );
    assert_eq!(held, (packs[0].len() * 5).to_string());
    // What each network holds is counted as its shard, not the pack.
    let counted = psql(
        &env.db,
        "SELECT sum(len) FROM network_objects WHERE path LIKE 'packs/%'",
    );
    assert_eq!(counted, total.to_string());
}

#[test]
fn a_corrupt_or_lost_shard_is_found_excluded_and_rebuilt() {
    let mut env = five_networks();
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let (code, h) = env.health(&id, true);
    assert_eq!((code, h["status"].as_str()), (0, Some("healthy")), "{h}");
    let packs = h["erasure"]["packs"].as_u64().unwrap();
    assert_eq!(h["erasure"]["by_shards_left"]["5"], packs, "{h}");

    // One byte of the largest shard on `local` (shard 0) flipped.
    let bad = pack_files(&env, "local")
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap();
    let good = std::fs::read(&bad).unwrap();
    let mut bytes = good.clone();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&bad, &bytes).unwrap();
    let rel = bad
        .strip_prefix(env.network_dir("local"))
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // Health reads it and names it; the pack still has four shards.
    let (code, h) = env.health(&id, true);
    assert_ne!(code, 0, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let local = cairn_tests::env::health_of(&h, "local");
    assert_eq!(local["corrupt"], 1, "{h}");
    assert_eq!(local["corrupt_objects"][0], rel.as_str(), "{h}");
    assert_eq!(h["erasure"]["by_shards_left"]["4"], 1, "{h}");
    assert_eq!(h["erasure"]["packs_at_risk"], 0, "{h}");

    // A restore left with it among three networks excludes it and says so;
    // with a fourth it rebuilds around it.
    env.stop_workers();
    for n in ["n2", "n3"] {
        away(&env, n);
    }
    let o = restore(&env, &id, &env.path().join("out-1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("network local: shard 0: body does not match its hash (excluded)"),
        "{err}"
    );
    back(&env, "n2");
    let out = env.path().join("out-2");
    let o = restore(&env, &id, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
    back(&env, "n3");

    // The same pack's shards lost on n4 and n5 too: three left of five, at
    // risk; health flags it, naming its chunks' count.
    let name = bad.file_name().unwrap();
    for n in ["n4", "n5"] {
        let f = pack_files(&env, n)
            .into_iter()
            .find(|f| f.file_name() == Some(name))
            .unwrap();
        std::fs::remove_file(f).unwrap();
    }
    let (_, h) = env.health(&id, true);
    assert_eq!(h["erasure"]["by_shards_left"]["2"], 1, "{h}");
    assert_eq!(h["erasure"]["packs_lost"], 1, "{h}");
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert!(
        h["erasure"]["worst"][0]
            .as_str()
            .unwrap()
            .ends_with("2 of 5 shards left"),
        "{h}"
    );
    // Repair cannot rebuild from two: it says so and changes nothing.
    let o = env.run(&["repair", &id, "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{r}");
    assert_eq!(r["repaired"][0]["objects_copied"], 0, "{r}");
    assert!(
        r["repaired"][0]["problems"]
            .to_string()
            .contains("n4: 1 objects missing"),
        "{r}"
    );
    // With the corrupt shard put right by hand (as a network that healed),
    // three are left: at risk, and repair cuts the two lost ones again.
    std::fs::write(&bad, &good).unwrap();
    let (_, h) = env.health(&id, true);
    assert_eq!(h["erasure"]["packs_at_risk"], 1, "{h}");
    assert!(h["erasure"]["chunks_at_risk"].as_u64().unwrap() >= 1, "{h}");
    assert!(
        h["recommendations"]
            .to_string()
            .contains("one more lost network loses them"),
        "{h}"
    );
    let r = env.json(&["repair", &id, "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["repaired"][0]["objects_copied"], 2, "{r}");
    // And the corrupt shard, once more: repair cuts it again from the others.
    std::fs::write(&bad, &bytes).unwrap();
    let r = env.json(&["repair", &id, "--json"]);
    assert_eq!(r["repaired"][0]["objects_copied"], 1, "{r}");
    assert_eq!(
        std::fs::read(&bad).unwrap(),
        good,
        "the shard cut again is the original"
    );
    let (code, h) = env.health(&id, true);
    assert_eq!((code, h["status"].as_str()), (0, Some("healthy")), "{h}");
    assert_eq!(h["erasure"]["by_shards_left"]["5"], packs, "{h}");
    // Each network's repaired shard is recorded as that network's (n4 holds
    // shard 3, n5 shard 4) once the ledger has read repair's events.
    env.serve(&["all"]);
    cairn_tests::env::wait_until_idle(&env, 60);
    let pack = name.to_string_lossy();
    let held = psql(
        &env.db,
        &format!(
            "SELECT string_agg(network || '=' || shard || '/' || shard_k, ' ' ORDER BY network)
             FROM chunk_copies WHERE chunk_id = decode('{pack}', 'hex')"
        ),
    );
    assert_eq!(held, "local=0/3 n2=1/3 n3=2/3 n4=3/3 n5=4/3");
    let o = restore(&env, &id, &env.path().join("out-3"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The same over five networks of four kinds: a directory, two S3 servers
/// (s3s-fs), an IPFS node (js-ipfs) and an Arweave gateway (arlocal). Two
/// servers stopped: the backup restores from the other three, rebuilt from
/// shards; a third stopped: the restore names what cannot be rebuilt.
#[test]
fn three_of_five_over_four_kinds_of_network_survives_two_servers_stopped() {
    use cairn_tests::{ArweaveServer, IpfsServer, S3Server};
    let dir = tempfile::tempdir().unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let mut s3a = S3Server::start(&dir.path().join("a"));
    let s3b = S3Server::start(&dir.path().join("b"));
    let mut ipfs = IpfsServer::start(dir.path());
    let arweave = ArweaveServer::start(dir.path());
    let arweave_toml = format!(
        "\n[[networks]]\nname = \"permaweb\"\nkind = \"arweave\"\nendpoint = \"{}\"\nwallet_file = \"{}\"\nkey_prefix = \"repo-{}\"\nmine = true\n",
        arweave.endpoint,
        arweave.wallet.display(),
        hex::encode(rand::random::<[u8; 4]>())
    );
    let mut env = Env::with(Options {
        extra_toml: format!(
            "{}{}{}{arweave_toml}\n[datasets.docs]\nredundancy = \"erasure 3/5\"\n",
            s3a.network_toml("s3a"),
            s3b.network_toml("s3b"),
            ipfs.network_toml("ipfs"),
        ),
        env: vec![
            ("CAIRN_S3A_SECRET_ACCESS_KEY".into(), s3a.secret_key.clone()),
            ("CAIRN_S3B_SECRET_ACCESS_KEY".into(), s3b.secret_key.clone()),
        ],
        ..Options::default()
    });
    let cfg: cairn_config::NetworkConfig = fixtures::network(serde_json::json!({
        "name": "permaweb", "kind": "arweave", "endpoint": arweave.endpoint,
        "wallet_file": arweave.wallet}));
    let cairn_networks::Kind::Arweave(a) = &cfg.kind else {
        unreachable!()
    };
    arweave.mint(
        cairn_networks::arweave::ArweaveNetwork::new("permaweb", a)
            .unwrap()
            .address(),
    );
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    // Every network's report is good; the permaweb's was read back.
    for n in b["networks"].as_array().unwrap() {
        assert_eq!(n["ok"], true, "{b}");
    }
    env.stop_workers();

    s3a.stop();
    ipfs.stop();
    let out = env.path().join("restored");
    let r = env.json(&["restore", &id, "--to", out.to_str().unwrap(), "--json"]);
    same_tree(&out, &src);
    let from = r["chunks_from"].to_string();
    assert!(
        from.contains("(shards)") && !from.contains("s3a") && !from.contains("ipfs"),
        "{r}"
    );

    drop(arweave);
    let o = restore(&env, &id, &env.path().join("never"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "restored with three networks stopped");
    assert!(
        err.contains("chunk ") && err.contains("2 intact shard(s) of the 3 needed"),
        "{err}"
    );
}

/// A dataset whose policy changes leans on what it stored before only where
/// that meets the new policy: whole copies after shards are written anew
/// (a shard alone restores nothing), shards after whole copies are not
/// (whole copies on every network serve any `k` of them).
#[test]
fn a_changed_policy_leans_only_on_what_meets_it() {
    let mut env = five_networks();
    env.start_all();
    let src = source(&env);
    let coded = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let total = coded["chunks_total"].as_u64().unwrap();
    assert_eq!(coded["chunks_new"].as_u64(), Some(total), "{coded}");

    let set_policy = |env: &mut Env, policy: &str| {
        env.stop_workers();
        let text = std::fs::read_to_string(&env.config).unwrap();
        let (head, _) = text.split_once("\n[datasets.docs]\n").unwrap();
        std::fs::write(
            &env.config,
            format!("{head}\n[datasets.docs]\nredundancy = \"{policy}\"\n"),
        )
        .unwrap();
        env.serve(&["all"]);
    };
    set_policy(&mut env, "replicate");
    let whole = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let data_chunks = whole["chunks_new"].as_u64().unwrap();
    // Every file's data written again, whole (the tree chunks may repeat).
    assert!(data_chunks + 2 >= total, "leaned on shards: {whole}");
    let id = whole["backup_id"].as_str().unwrap();
    let out = env.restore_from_only("n4", id);
    same_tree(&out, &src);

    set_policy(&mut env, "erasure 3/5");
    let again = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    assert_eq!(
        again["chunks_new"], 0,
        "whole copies everywhere serve: {again}"
    );
    env.stop_workers();
    for n in ["local", "n3"] {
        away(&env, n);
    }
    let out = env.path().join("again");
    let o = restore(&env, again["backup_id"].as_str().unwrap(), &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
}

/// A compliance rule that keeps an erasure-coded dataset on an archive gets
/// it there whole: each pack rebuilt from the shards, so that the archive
/// alone restores it (the dataset not shreddable, so that its key goes to
/// the archive, which cannot delete, too).
#[test]
fn an_archive_gets_an_erasure_coded_backup_whole() {
    let mut env = Env::with(Options {
        extra_networks: NETS[1..].iter().map(|n| n.to_string()).collect(),
        extra_toml: "\n[[networks]]\nname = \"vault\"\nkind = \"fs\"\ncan_delete = false\n\
             \n[datasets.docs]\nnetworks = [\"local\", \"n2\", \"n3\", \"n4\", \"n5\"]\nredundancy = \"erasure 3/5\"\nprofiles = [\"vaulted\"]\nshreddable = false\n\
             \n[compliance.profiles.vaulted]\nrules = [\n  { id = \"to-vault\", control = \"records policy 9\", kind = \"immutable_copy\", archive = \"vault\" },\n]\n"
            .into(),
        ..Options::default()
    });
    env.set_env("CAIRN_RETENTION__MIGRATE_INTERVAL_SECS", "1");
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    cairn_tests::wait_for(90, "the backup's migration to the vault", || {
        (psql(
            &env.db,
            &format!(
                "select count(*) from ledger_entries where kind = 'backup.migrated' and backup_id = '{id}'"
            ),
        ) == "1")
            .then_some(())
    });
    let vault = pack_files(&env, "vault");
    assert_eq!(vault.len(), pack_files(&env, "local").len());
    for f in &vault {
        assert_ne!(
            &std::fs::read(f).unwrap()[..4],
            b"CRNE",
            "{} is a shard",
            f.display()
        );
    }
    env.stop_workers();
    let out = env.restore_from_only("vault", &id);
    same_tree(&out, &src);
}

/// A network lost for good is replaced by a new one (`cairn repair
/// --replace OLD=NEW`): the new network gets the shards the old one held,
/// cut again from the others, in its place, so that the backup survives
/// two more losses again and the dataset's next backups, on the new list,
/// lean on those shards. Bad replacements are refused by name, changing
/// nothing.
#[test]
fn a_lost_network_is_replaced_by_a_new_one_holding_its_shards() {
    let mut env = Env::with(Options {
        extra_networks: ["n2", "n3", "n4", "n5", "spare"]
            .iter()
            .map(|n| n.to_string())
            .collect(),
        extra_toml: "\n[datasets.docs]\nnetworks = [\"local\", \"n2\", \"n3\", \"n4\", \"n5\"]\nredundancy = \"erasure 3/5\"\n".into(),
        ..Options::default()
    });
    env.start_all();
    let src = source(&env);
    let b = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let networks = |env: &Env| {
        psql(
            &env.db,
            &format!("SELECT array_to_string(networks, ' ') FROM backups WHERE backup_id = '{id}'"),
        )
    };
    assert_eq!(networks(&env), "local n2 n3 n4 n5");
    let n3_shards = bytes_of(&pack_files(&env, "n3"));

    // n3 is lost for good: every pack is down to four shards.
    away(&env, "n3");
    let (_, h) = env.health(&id, true);
    assert_eq!(h["status"], "degraded", "{h}");
    let packs = h["erasure"]["packs"].as_u64().unwrap();
    assert_eq!(h["erasure"]["by_shards_left"]["4"], packs, "{h}");

    // Refused by name, and nothing changes.
    for (replace, says) in [
        ("n3=nowhere", "network \"nowhere\" is not configured"),
        ("local=n2", "is on network \"n2\" already"),
        ("n9=spare", "is not on network \"n9\""),
        ("n3", "give OLD=NEW"),
        ("n3=n3", "cannot replace itself"),
    ] {
        let o = env.run(&["repair", &id, "--replace", replace]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "--replace {replace} was taken");
        assert!(err.contains(says), "--replace {replace}: {err}");
    }
    assert!(pack_files(&env, "spare").is_empty());
    assert_eq!(networks(&env), "local n2 n3 n4 n5");

    // The spare takes n3's place: each pack's third shard, cut again from
    // the others, the metadata whole, the repository's own files.
    let r = env.json(&["repair", &id, "--replace", "n3=spare", "--json"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["repaired"][0]["replaced"]["to"], "spare", "{r}");
    assert_eq!(
        bytes_of(&pack_files(&env, "spare")),
        n3_shards,
        "the spare holds what n3 held"
    );
    assert!(env.network_dir("spare").join("config").exists());
    cairn_tests::env::wait_until_idle(&env, 60);
    cairn_tests::wait_for(30, "the ledger to record the move", || {
        (networks(&env) == "local n2 spare n4 n5").then_some(())
    });
    let pack = pack_files(&env, "spare")[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let held = psql(
        &env.db,
        &format!(
            "SELECT string_agg(network || '=' || shard, ' ' ORDER BY shard, network)
             FROM chunk_copies WHERE chunk_id = decode('{pack}', 'hex')"
        ),
    );
    assert!(held.contains("spare=2"), "{held}");
    let (code, h) = env.health(&id, true);
    assert_eq!((code, h["status"].as_str()), (0, Some("healthy")), "{h}");
    assert_eq!(h["erasure"]["by_shards_left"]["5"], packs, "{h}");
    // Run again, it finds nothing to do.
    let o = env.run(&["repair", &id, "--replace", "n3=spare"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not on network \"n3\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Two more networks lost: the spare's shards make up the three.
    env.stop_workers();
    for n in ["n2", "n4"] {
        away(&env, n);
    }
    let out = env.path().join("out");
    let o = restore(&env, &id, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
    let out = env.path().join("recovered");
    let o = recover_restore(&env, &id, &["local", "spare", "n5"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
    for n in ["n2", "n4"] {
        back(&env, n);
    }

    // The dataset moved to the spare too: its next backup of the same
    // files writes no pack again.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("\"n3\", \"n4\"", "\"spare\", \"n4\""),
    )
    .unwrap();
    env.serve(&["all"]);
    let again = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(again["chunks_new"], 0, "{again}");
}

/// Garbage collection of erasure-coded packs: a forgotten backup's shards
/// stay on every network while a later backup still names their packs, and
/// go from every network once no backup does; what stays restores without
/// two networks.
#[test]
fn the_collector_frees_shards_only_once_no_backup_names_their_pack() {
    let mut env = five_networks();
    env.start_all();
    let src = source(&env);
    let first = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let first_id = first["backup_id"].as_str().unwrap().to_string();
    fixtures::random_file(&src.join("later.bin"), 2 << 20);
    let second = env.backup(&["--dataset", "docs", src.to_str().unwrap()]);
    let second_id = second["backup_id"].as_str().unwrap().to_string();
    assert!(
        second["chunks_new"].as_u64().unwrap() < second["chunks_total"].as_u64().unwrap(),
        "the second backup leans on the first's packs: {second}"
    );
    let shards = |env: &Env| NETS.map(|n| pack_files(env, n).len());
    let before = shards(&env);
    assert!(
        before.iter().all(|&c| c == before[0] && c > 0),
        "{before:?}"
    );

    // The first forgotten: every pack is still named by the second.
    env.ok(&["forget", &first_id]);
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
    }
    let kept = shards(&env);
    assert_eq!(
        kept, before,
        "a pack the second backup names keeps its shards everywhere"
    );
    env.stop_workers();
    for n in ["n2", "n5"] {
        away(&env, n);
    }
    let out = env.path().join("out");
    let o = restore(&env, &second_id, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    same_tree(&out, &src);
    for n in ["n2", "n5"] {
        back(&env, n);
    }
    env.serve(&["all"]);

    // The second forgotten too: no shard is left on any network, and the
    // ledger counts none.
    env.ok(&["forget", &second_id]);
    let g = env.json(&["gc", "--grace", "0s", "--json"]);
    for n in g["networks"].as_array().unwrap() {
        assert_eq!(n["outcome"], "swept", "{g}");
        assert_eq!(n["referenced"], 0, "{g}");
    }
    assert_eq!(shards(&env), [0; 5]);
    cairn_tests::env::wait_until_idle(&env, 60);
    assert_eq!(
        psql(
            &env.db,
            "SELECT count(*) FROM network_objects WHERE path LIKE 'packs/%'"
        ),
        "0"
    );
}
