//! Cost and quotas against real servers (NATS, PostgreSQL, local
//! directories, moto's S3 and arlocal's Arweave): what `cairn cost` counts
//! from the ledger is what the networks really hold, egress and requests are
//! recorded by the processes that made them, prices and the 12-month
//! projection follow the configuration, and quotas counted from the ledger
//! turn a backup to an overflow network or away, naming the quota, until
//! forget and the collector make room.

use cairn_networks::DynNetwork;
use cairn_tests::*;
use serde_json::{json, Value};

/// Where a repository keeps objects Cairn records (the config and key
/// files `init` writes are not backup data).
const RECORDED: &[&str] = &["chunks/", "packs/", "backups/", "datakeys/", "datasets/"];

/// Objects and bytes a network really holds under the recorded prefixes,
/// asked of the network itself.
fn really_holds(net: &DynNetwork) -> (u64, u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut objects, mut bytes) = (0u64, 0u64);
        for prefix in RECORDED {
            for p in net.list(prefix).await.unwrap() {
                objects += 1;
                bytes += net.get(&p).await.unwrap().len() as u64;
            }
        }
        (objects, bytes)
    })
}

fn of<'a>(report: &'a Value, network: &str) -> &'a Value {
    report["networks"]
        .as_array()
        .unwrap_or_else(|| panic!("no networks: {report}"))
        .iter()
        .find(|n| n["network"] == network)
        .unwrap_or_else(|| panic!("no network {network}: {report}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// `cost --json` and the other arguments.
fn cost(env: &Env, args: &[&str]) -> Value {
    let mut a = vec!["cost", "--json"];
    a.extend_from_slice(args);
    env.json(&a)
}

/// A local directory, moto's S3 and Arweave, each priced its own way; three
/// backups of one dataset and one of another. `cairn cost` counts exactly
/// what each network holds, egress by restore and requests by every
/// process, prices them, projects 12 months under a daily schedule and
/// `keep_daily = 7`, and counts less once forget and gc have deleted.
#[test]
fn cost_is_counted_from_the_ledger_and_priced() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start(dir.path());
    moto.create_bucket("costs", false);
    let arweave = ArweaveServer::start(dir.path());
    let secret = dir.path().join("s3-secret");
    std::fs::write(&secret, "test\n").unwrap();
    let prefix = format!("repo-{}", hex::encode(rand::random::<[u8; 4]>()));
    let s3 = json!({"name": "s3", "kind": "s3", "endpoint": moto.endpoint, "bucket": "costs",
        "access_key_id": "test", "secret_access_key_file": secret});
    let perma = json!({"name": "permaweb", "kind": "arweave", "endpoint": arweave.endpoint,
        "wallet_file": arweave.wallet, "key_prefix": prefix, "mine": true});
    let mut env = Env::with(Options {
        extra_toml: format!(
            "\n[[networks]]\nname = \"s3\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"costs\"\naccess_key_id = \"test\"\nsecret_access_key_file = \"{}\"\nprice_gb_month = 0.004\nprice_gb_egress = 0.007\n\
             \n[[networks]]\nname = \"permaweb\"\nkind = \"arweave\"\nendpoint = \"{}\"\nwallet_file = \"{}\"\nkey_prefix = \"{prefix}\"\nmine = true\nprice_gb_once = 8.0\n\
             \n[retention.policies.a]\nkeep_daily = 7\n",
            moto.endpoint,
            secret.display(),
            arweave.endpoint,
            arweave.wallet.display()
        ),
        ..Options::default()
    });
    env.set_local_network("price_gb_month = 0.02");
    let local = cairn_networks::open(&network(
        json!({"name": "local", "kind": "fs", "path": env.network_dir("local")}),
    ))
    .unwrap();
    let s3 = cairn_networks::open(&network(s3)).unwrap();
    let perma_cfg = network(perma);
    let cairn_networks::Kind::Arweave(a) = &perma_cfg.kind else {
        unreachable!()
    };
    arweave.mint(
        cairn_networks::arweave::ArweaveNetwork::new("permaweb", a)
            .unwrap()
            .address(),
    );
    let perma = cairn_networks::open(&perma_cfg).unwrap();
    let nets = [("local", &local), ("s3", &s3), ("permaweb", &perma)];
    env.start_all();

    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 1 << 20);
    let b1 = env.backup(&["--dataset", "a", src.to_str().unwrap()]);
    random_file(&src.join("b.bin"), 200_000);
    let b2 = env.backup(&["--dataset", "a", src.to_str().unwrap()]);
    random_file(&src.join("c.bin"), 300_000);
    let b3 = env.backup(&["--dataset", "a", src.to_str().unwrap()]);
    let other = env.source_dir("other");
    random_file(&other.join("x.bin"), 100_000);
    env.backup(&["--dataset", "b", other.to_str().unwrap()]);
    let id = |b: &Value| b["backup_id"].as_str().unwrap().to_string();

    let out = env.path().join("out");
    let r = env.json(&["restore", &id(&b3), "--to", out.to_str().unwrap(), "--json"]);
    assert_eq!(snapshot(&out.join("src")), snapshot(&src));
    let read_from: Vec<String> = r["chunks_from"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| u(n) > 0)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!read_from.is_empty(), "{r}");

    let truth: Vec<(&str, (u64, u64))> = nets
        .iter()
        .map(|(n, net)| (*n, really_holds(net)))
        .collect();
    // The store workers record their requests every 15 s, the restore on
    // its way out; the ledger projects both.
    let report = wait_for(
        90,
        "every network's writes and the restore's reads recorded",
        || {
            let c = cost(&env, &[]);
            let written = truth
                .iter()
                .all(|(n, (objects, _))| u(&of(&c, n)["last_30d"]["puts"]) >= *objects);
            let restored: u64 = read_from
                .iter()
                .map(|n| of(&c, n)["egress_30d_by"]["restore"].as_u64().unwrap_or(0))
                .sum();
            (written && restored >= 1_500_000).then_some(c)
        },
    );

    // What the ledger counts is what each network holds, object for object.
    for (name, (objects, bytes)) in &truth {
        let n = of(&report, name);
        let (objects, bytes) = (*objects, *bytes);
        assert_eq!(
            (u(&n["objects"]), u(&n["bytes"])),
            (objects, bytes),
            "{name}: ledger against network"
        );
        assert!(bytes > 1 << 20, "{name} holds the backups: {n}");
    }
    let (l, s, p) = (
        of(&report, "local"),
        of(&report, "s3"),
        of(&report, "permaweb"),
    );
    let gb = |v: &Value| u(v) as f64 / 1e9;
    let m = |n: &Value, k: &str| n["monthly"][k].as_f64().unwrap();
    assert!(close(m(l, "storage"), gb(&l["bytes"]) * 0.02), "{l}");
    assert!(close(m(s, "storage"), gb(&s["bytes"]) * 0.004), "{s}");
    assert!(
        close(m(s, "egress"), gb(&s["last_30d"]["bytes_read"]) * 0.007),
        "{s}"
    );
    assert_eq!(
        u(&p["written_30d"]),
        u(&p["bytes"]),
        "all written today: {p}"
    );
    assert!(close(m(p, "once"), gb(&p["bytes"]) * 8.0), "{p}");
    assert_eq!(m(p, "storage"), 0.0, "{p}");
    let total: f64 = nets.iter().map(|(n, _)| m(of(&report, n), "total")).sum();
    assert!(close(report["monthly_total"].as_f64().unwrap(), total));

    // The datasets' shares add up to each network's whole.
    let (ca, cb) = (
        cost(&env, &["--dataset", "a"]),
        cost(&env, &["--dataset", "b"]),
    );
    for (name, _) in &nets {
        let (a, b) = (u(&of(&ca, name)["bytes"]), u(&of(&cb, name)["bytes"]));
        assert!(a > 0 && b > 0, "{name}: {a} {b}");
        assert_eq!(a + b, u(&of(&report, name)["bytes"]), "{name}");
    }

    // Twelve months of a daily schedule under keep_daily = 7: from the
    // first full month on, seven backups kept where one is kept today, each
    // further one adding what the median recent backup added; on the
    // permaweb, which deletes nothing, every one of them.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!(
            "{text}\n[[schedules]]\ndataset = \"a\"\ncron = \"0 3 * * *\"\nsource = {{ type = \"paths\", paths = [\"{}\"] }}\n",
            src.display()
        ),
    )
    .unwrap();
    let added = |b: &Value| u(&env.json(&["show", &id(b), "--json"])["stats"]["bytes_stored"]);
    let change = added(&b2).max(added(&b3));
    // keep_daily keeps one backup a day: today's three are one, unless
    // they straddled midnight.
    let days: std::collections::BTreeSet<String> = [&b1, &b2, &b3]
        .iter()
        .map(|b| {
            env.json(&["show", &id(b), "--json"])["requested_at"]
                .as_str()
                .unwrap()[..10]
                .to_string()
        })
        .collect();
    let kept_now = days.len() as u64;
    let now = cost(&env, &[]);
    let months = now["projection"].as_array().unwrap();
    assert_eq!(months.len(), 12, "{now}");
    // The permaweb deletes nothing: every backup written stays.
    let mut taken = u(&months[0]["backups"]);
    for month in &months[1..] {
        let days = month["backups"].as_u64().unwrap();
        assert!((28..=31).contains(&days), "{month}");
        taken += days;
        for (name, _) in &nets {
            let held = month["networks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["network"] == *name)
                .unwrap();
            let expected = if *name == "permaweb" {
                taken * change
            } else {
                (7 - kept_now) * change
            };
            assert_eq!(
                u(&held["bytes"]),
                u(&of(&now, name)["bytes"]) + expected,
                "{name} in {month}"
            );
            assert_eq!(u(&held["written"]), days * change, "{name} in {month}");
        }
    }
    // Bad input is named.
    for (args, says) in [
        (
            &["cost", "--as-of", "yesterday"][..],
            "--as-of \"yesterday\" is not an RFC 3339 time",
        ),
        (
            &["cost", "--dataset", "nosuch"][..],
            "dataset \"nosuch\": no backup of it",
        ),
        (&["cost", "--months", "500"][..], "500"),
    ] {
        let o = env.run(args);
        assert!(!o.status.success(), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    let shown = env.ok(&["cost"]);
    assert!(
        shown.contains("permaweb") && shown.contains("next 12 months"),
        "{shown}"
    );

    // Forget the two older backups and collect: the ledger counts what
    // was deleted, and still matches the networks; the permaweb keeps all.
    env.ok(&["forget", &id(&b1)]);
    env.ok(&["forget", &id(&b2)]);
    env.ok(&["gc", "--grace", "0s"]);
    let after = wait_for(60, "the deletions recorded", || {
        let c = cost(&env, &[]);
        nets.iter()
            .all(|(name, net)| really_holds(net).1 == u(&of(&c, name)["bytes"]))
            .then_some(c)
    });
    for (name, net) in &nets {
        let (objects, bytes) = really_holds(net);
        let n = of(&after, name);
        assert_eq!(
            (u(&n["objects"]), u(&n["bytes"])),
            (objects, bytes),
            "{name}"
        );
    }
    assert!(u(&of(&after, "local")["bytes"]) < u(&of(&report, "local")["bytes"]));
    assert!(u(&of(&after, "s3")["bytes"]) < u(&of(&report, "s3")["bytes"]));
    assert_eq!(
        u(&of(&after, "permaweb")["bytes"]),
        u(&of(&report, "permaweb")["bytes"])
    );
}

/// Quotas counted from the ledger: a backup that fits goes where it was
/// asked, one that would take a network past its quota goes to the
/// dataset's overflow network, one that fits nowhere is refused naming the
/// quota with nothing stored, and forget and gc make room again.
#[test]
fn quotas_reroute_refuse_and_free_from_the_ledger() {
    let mut env = Env::with(Options {
        extra_toml: "\n[[networks]]\nname = \"small\"\nkind = \"fs\"\nquota_bytes = 1000000\n\
             \n[[networks]]\nname = \"spare\"\nkind = \"fs\"\nquota_bytes = 1200000\n\
             \n[datasets.d]\nnetworks = [\"local\", \"small\"]\noverflow = [\"spare\"]\n"
            .into(),
        ..Options::default()
    });
    env.start_all();
    let src = env.source_dir("src");
    random_file(&src.join("a.bin"), 600_000);
    let b1 = env.backup(&["--dataset", "d", src.to_str().unwrap()]);
    let id = |b: &Value| b["backup_id"].as_str().unwrap().to_string();
    let show = |b: &Value| env.json(&["show", &id(b), "--json"]);
    assert_eq!(show(&b1)["networks"], json!(["local", "small"]));

    // Its dataset's last backup added ~600 kB; small holds that much of
    // its 1 MB: the next goes to spare instead.
    random_file(&src.join("b.bin"), 100_000);
    let b2 = env.backup(&["--dataset", "d", src.to_str().unwrap()]);
    let s2 = show(&b2);
    assert_eq!(s2["networks"], json!(["local", "spare"]), "{s2}");
    let r = &s2["rerouted"][0];
    assert_eq!(
        (&r["from"], &r["to"]),
        (&json!("small"), &json!("spare")),
        "{s2}"
    );
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("network small holds") && reason.contains("quota_bytes = 1000000"),
        "{reason}"
    );
    let c = cost(&env, &[]);
    let small = u(&of(&c, "small")["bytes"]);
    assert!(small > 600_000 && small <= 1_000_000, "{c}");
    assert_eq!(u(&of(&c, "small")["quota_bytes"]), 1_000_000);

    // Spare has no room for another ~700 kB either: refused, nothing read
    // or stored.
    random_file(&src.join("c.bin"), 100_000);
    let o = env.run(&["backup", "--json", "--dataset", "d", src.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    let failed: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let text = format!("{failed} {}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "network small holds",
        "quota_bytes = 1000000",
        "no overflow network (spare) has room",
        "Nothing was read or stored",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    let b3 = failed["backup_id"]
        .as_str()
        .expect("the refused backup's id");
    for n in ["local", "small", "spare"] {
        assert!(
            !env.network_dir(n).join("backups").join(b3).exists(),
            "{n} holds the refused backup"
        );
    }
    let c = cost(&env, &[]);
    assert_eq!(
        u(&of(&c, "small")["bytes"]),
        small,
        "nothing stored on small"
    );

    // Forgotten and collected, their bytes leave the count: the next backup
    // fits on small again.
    env.ok(&["forget", &id(&b1)]);
    env.ok(&["forget", &id(&b2)]);
    env.ok(&["gc", "--grace", "0s"]);
    wait_for(30, "the collection recorded", || {
        (u(&of(&cost(&env, &[]), "small")["bytes"]) < 100_000).then_some(())
    });
    std::fs::remove_file(src.join("a.bin")).unwrap();
    let b4 = env.backup(&["--dataset", "d", src.to_str().unwrap()]);
    let s4 = show(&b4);
    assert_eq!(s4["networks"], json!(["local", "small"]), "{s4}");
    assert!(s4.get("rerouted").is_none(), "{s4}");

    // A ledger from before the count existed gets it from its log when it
    // migrates: the same figures.
    let held = |c: &Value| -> Vec<(String, u64, u64)> {
        c["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["network"].to_string(), u(&n["objects"]), u(&n["bytes"])))
            .collect()
    };
    let before = held(&cost(&env, &[]));
    env.stop_workers();
    psql(
        &env.db,
        "DROP TABLE network_objects, network_traffic; ALTER TABLE backups DROP COLUMN rerouted; \
         DELETE FROM schema_migrations WHERE version = 12",
    );
    assert_eq!(held(&cost(&env, &[])), before);
    assert!(before
        .iter()
        .any(|(n, _, b)| n == "\"small\"" && *b > 100_000));
}
