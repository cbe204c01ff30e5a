//! Load benchmark of the audit ledger (not a test): sustained appends per
//! second through the real code path (`append::Ledger::append`, batched, one
//! connection), then, at the final size, inclusion and consistency proof
//! times from the stored tree, and the time of the full `audit verify`.
//!
//! ```text
//! export CARGO_TARGET_DIR=$HOME/.cache/cairn-target
//! cargo run --release -p cairn-audit-ledger --example ledger_load -- --entries 1000000
//! ```
//!
//! It creates its own database (`cairn_bench_<random hex>`) on the server
//! named by `--pg` (libpq key=value form, default `host=127.0.0.1 port=5432
//! user=postgres`, or `$CAIRN_BENCH_PG`) and drops it at the end, also after
//! an error or Ctrl-C. The entries are realistic events (`cairn_events`
//! envelopes, MessagePack as the stages publish them): per backup a request,
//! a start, `object.sealed` and one `object.stored` per network for each
//! chunk, chunk lists and manifest, `backup.ingested` and an outcome.
//! Only the `Ledger::append` calls are timed. Every proof it times is also
//! checked with `cairn_tlog`. Output: plain-text tables, then one JSON line.
//! With `--via-nats URL` it times the whole ledger worker instead (JetStream
//! in, append, re-publish on `audit.entry`, ack).

use anyhow::{bail, Context, Result};
use cairn_audit_ledger::{append::Ledger, checkpoint};
use cairn_events::{
    encode, BackupId, BackupRequest, ChunkId, Envelope, Event, Ingested, NetworkReport,
    ObjectDigest, ObjectKey, Outcome, Redundancy, Source, Stats, Stored,
};
use cairn_ledger::{check, db, prove, tree};
use cairn_tlog::reader::Known;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

const USAGE: &str = "\
ledger_load: load benchmark of the audit ledger (PostgreSQL)

  --entries N          entries to append (default 1000000)
  --batch B            entries per Ledger::append call (default 1000)
  --window W           report appends/s per W entries (default 100000)
  --compare-batch LIST also append the first --compare-entries entries into a
                       fresh database with each of these batch sizes
                       (comma-separated, default 500; 0 or '' for none)
  --compare-entries N  (default: the window, 100000)
  --proofs N           inclusion and consistency proofs to time (default 1000)
  --seed S             workload seed (default 1)
  --pg CONNINFO        server, libpq key=value form without dbname
                       (default $CAIRN_BENCH_PG or
                       'host=127.0.0.1 port=5432 user=postgres')
  --via-nats URL       instead: the whole ledger worker end to end. Publish
                       --entries events on a fresh EVENTS stream (own prefix)
                       at URL, then time `cairn_audit_ledger::run` (JetStream
                       in, append, re-publish on audit.entry, ack) until the
                       log holds them all; streams removed at the end
";

struct Args {
    entries: u64,
    batch: usize,
    window: u64,
    compare: Vec<usize>,
    compare_entries: u64,
    proofs: usize,
    seed: u64,
    pg: String,
    via_nats: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        entries: 1_000_000,
        batch: 1000,
        window: 100_000,
        compare: vec![500],
        compare_entries: 0,
        proofs: 1000,
        seed: 1,
        pg: std::env::var("CAIRN_BENCH_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into()),
        via_nats: None,
    };
    let num = |flag: &str, v: Option<String>| -> Result<u64> {
        let v = v.with_context(|| format!("{flag} needs a value"))?;
        v.replace('_', "")
            .parse()
            .with_context(|| format!("{flag}: not a number: {v:?}"))
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--entries" => a.entries = num(&flag, it.next())?,
            "--batch" => a.batch = num(&flag, it.next())? as usize,
            "--window" => a.window = num(&flag, it.next())?,
            "--compare-batch" => {
                let v = it.next().context("--compare-batch needs a value")?;
                a.compare = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "0")
                    .map(|s| s.parse().with_context(|| format!("--compare-batch: {s:?}")))
                    .collect::<Result<_>>()?;
            }
            "--compare-entries" => a.compare_entries = num(&flag, it.next())?,
            "--proofs" => a.proofs = num(&flag, it.next())? as usize,
            "--seed" => a.seed = num(&flag, it.next())?,
            "--pg" => a.pg = it.next().context("--pg needs a value")?,
            "--via-nats" => a.via_nats = Some(it.next().context("--via-nats needs a URL")?),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if a.entries < 2 || a.batch == 0 || a.window == 0 {
        bail!("--entries must be at least 2, --batch and --window at least 1");
    }
    if a.compare_entries == 0 {
        a.compare_entries = a.window.min(a.entries);
    }
    Ok(a)
}

/// SplitMix64: a small deterministic generator, so a seed gives the same
/// workload (event ids still differ between runs: backup ids are UUIDv7).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
    fn hex32(&mut self) -> String {
        hex::encode(self.bytes32())
    }
}

const NETWORKS: [&str; 2] = ["local", "s3"];

/// Events as a pipeline of stages emits them for a stream of backups.
struct Workload {
    rng: Rng,
    queue: VecDeque<(Vec<u8>, Envelope)>,
    backups: u64,
    kinds: BTreeMap<&'static str, u64>,
    bytes: u64,
    min_len: usize,
    max_len: usize,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: Rng(seed),
            queue: VecDeque::new(),
            backups: 0,
            kinds: BTreeMap::new(),
            bytes: 0,
            min_len: usize::MAX,
            max_len: 0,
        }
    }

    /// The next `n` events, encoded.
    fn take(&mut self, n: usize) -> Vec<(Vec<u8>, Envelope)> {
        while self.queue.len() < n {
            self.backup();
        }
        let out: Vec<_> = self.queue.drain(..n).collect();
        for (raw, env) in &out {
            *self.kinds.entry(env.event.kind()).or_default() += 1;
            self.bytes += raw.len() as u64;
            self.min_len = self.min_len.min(raw.len());
            self.max_len = self.max_len.max(raw.len());
        }
        out
    }

    fn push(&mut self, source: &str, backup: &BackupId, event: Event, parts: &[&[u8]]) {
        let env = Envelope::new(source, backup.clone(), event, parts);
        self.queue.push_back((encode(&env), env));
    }

    /// One object sealed, then stored on every network.
    fn object(&mut self, sealer: &str, backup: &BackupId, object: ObjectKey, len: u64) {
        let path = cairn_repo::layout::object(&object);
        let sha256 = self.rng.hex32();
        let digest = ObjectDigest {
            object,
            sha256: sha256.clone(),
            len,
            packed: Vec::new(),
            run: None,
            shards: None,
        };
        self.push(
            sealer,
            backup,
            Event::ObjectSealed(digest.clone()),
            &[path.as_bytes(), sha256.as_bytes()],
        );
        for net in NETWORKS {
            let existed = self.rng.below(50) == 0;
            self.push(
                &format!("store:{net}"),
                backup,
                Event::ObjectStored(Stored {
                    network: net.into(),
                    digest: digest.clone(),
                    existed,
                    shard: None,
                }),
                &[net.as_bytes(), path.as_bytes(), sha256.as_bytes()],
            );
        }
    }

    fn backup(&mut self) {
        self.backups += 1;
        let id = BackupId::generate();
        let networks: Vec<String> = NETWORKS.iter().map(|s| s.to_string()).collect();
        let dataset = format!("dataset-{:02}", self.rng.below(20));
        self.push(
            "cli",
            &id,
            Event::BackupRequested(BackupRequest {
                dataset: dataset.clone(),
                tags: vec!["nightly".into(), "sox".into()],
                source: Source::Paths {
                    paths: vec![format!("/srv/{dataset}"), format!("/etc/{dataset}")],
                },
                networks: networks.clone(),
                min_copies: Some(2),
                requested_by: "operator@backup-01".into(),
                force_read: false,
            }),
            &[],
        );
        self.push(
            "ingest",
            &id,
            Event::BackupStarted {
                worker: "ingest@backup-01".into(),
                run: None,
            },
            &[],
        );
        // 50–449 new chunks (average ~250), 64–896 KiB of plaintext each.
        let chunks = 50 + self.rng.below(400);
        let mut stats = Stats {
            chunks_total: chunks + self.rng.below(2000),
            chunks_new: chunks,
            files: 100 + self.rng.below(10_000),
            ..Stats::default()
        };
        for _ in 0..chunks {
            let plain = 65_536 + self.rng.below(851_968);
            let sealed = plain / (1 + self.rng.below(3)) + 52;
            stats.bytes_read += plain;
            stats.bytes_stored += sealed;
            let object = ObjectKey::Chunk {
                id: ChunkId(self.rng.bytes32()),
            };
            self.object("encrypt", &id, object, sealed);
        }
        let pages = 1 + stats.chunks_total / 10_000;
        for page in 0..pages as u32 {
            let object = ObjectKey::ChunkList {
                backup_id: id.clone(),
                page,
            };
            let len = 1000 + self.rng.below(300_000);
            self.object("ingest", &id, object, len);
        }
        let object = ObjectKey::Manifest {
            backup_id: id.clone(),
        };
        let len = 2000 + self.rng.below(20_000);
        self.object("encrypt", &id, object, len);
        let merkle_root = self.rng.hex32();
        self.push(
            "ingest",
            &id,
            Event::BackupIngested(Ingested {
                stats: stats.clone(),
                chunk_pages: pages as u32,
                merkle_root: merkle_root.clone(),
                networks: networks.clone(),
                redundancy: Redundancy::Replicate { min_copies: 2 },
                data_key: None,
                run: None,
                catalogue: false,
                dataset_key: None,
                wal: None,
                retain_until: None,
                rerouted: Vec::new(),
            }),
            &[],
        );
        let outcome = Outcome {
            stats,
            merkle_root,
            sealed_root: self.rng.hex32(),
            networks: NETWORKS
                .iter()
                .map(|n| NetworkReport {
                    network: n.to_string(),
                    ok: true,
                    ..NetworkReport::default()
                })
                .collect(),
            reasons: vec![],
        };
        self.push("verify", &id, Event::BackupCompleted(outcome), &[]);
    }
}

/// Sorted sample in milliseconds: (median, p99, max).
fn quantiles(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let p99 = v[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
    (median, p99, v[n - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Databases this run created and has not dropped yet.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn unique_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("cairn_bench_{:016x}", h.finish())
}

/// Creates (and migrates) a fresh database through `db::open`.
async fn create(pg: &str) -> Result<(String, Client)> {
    let name = unique_name();
    CREATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.clone());
    let client = db::open(&cairn_ledger::PostgresConfig {
        url: format!("{pg} dbname={name}"),
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating database {name}"))?;
    Ok((name, client))
}

async fn drop_db(pg: &str, name: &str) -> Result<()> {
    let (admin, conn) = tokio_postgres::connect(&format!("{pg} dbname=postgres"), NoTls).await?;
    let task = tokio::spawn(conn);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    drop(admin);
    let _ = task.await;
    CREATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|n| n != name);
    Ok(())
}

/// CPU seconds (user + system) of a process, from /proc (Linux, USER_HZ 100).
fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

struct Window {
    end: u64,
    entries: u64,
    secs: f64,
    batch_ms: Vec<f64>,
}

struct AppendRun {
    ledger: Ledger,
    windows: Vec<Window>,
    append_secs: f64,
    generate_secs: f64,
    checkpoint: Option<(u64, f64)>,
    cpu_self: Option<f64>,
    cpu_backend: Option<f64>,
    wall: f64,
}

/// Appends `entries` events in batches of `batch`, timing every
/// `Ledger::append`; optionally issues a checkpoint once at `checkpoint_at`
/// (outside the timed appends).
#[allow(clippy::too_many_arguments)]
async fn append_run(
    client: Client,
    work: &mut Workload,
    entries: u64,
    batch: usize,
    window: u64,
    checkpoint_at: Option<(u64, &std::path::Path)>,
    progress: bool,
) -> Result<AppendRun> {
    let backend_pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let backend_pid = backend_pid.to_string();
    let cpu0 = (cpu_secs("self"), cpu_secs(&backend_pid));
    let started = Instant::now();
    let mut ledger = Ledger::new(client, None);
    let mut windows: Vec<Window> = Vec::new();
    let mut cur = Window {
        end: 0,
        entries: 0,
        secs: 0.0,
        batch_ms: Vec::new(),
    };
    let (mut done, mut append_secs, mut generate_secs) = (0u64, 0.0f64, 0.0f64);
    let mut checkpoint = None;
    let mut checkpoint_secs = 0.0;
    while done < entries {
        let n = (batch as u64).min(entries - done) as usize;
        let t = Instant::now();
        let events = work.take(n);
        generate_secs += t.elapsed().as_secs_f64();
        let items: Vec<(&[u8], &Envelope)> =
            events.iter().map(|(raw, env)| (&raw[..], env)).collect();
        let t = Instant::now();
        let out = ledger.append(&items).await.context("Ledger::append")?;
        let dt = t.elapsed();
        if out.added != n {
            bail!("appended {} of {n} entries: duplicate event ids", out.added);
        }
        done += n as u64;
        append_secs += dt.as_secs_f64();
        cur.entries += n as u64;
        cur.secs += dt.as_secs_f64();
        cur.batch_ms.push(ms(dt));
        if cur.entries >= window || done == entries {
            cur.end = done;
            if progress {
                let (p50, _, max) = quantiles(&mut cur.batch_ms.clone());
                println!(
                    "  … {:>9} entries: {:>8.0} entries/s in this window (batch p50 {p50:.1} ms, max {max:.1} ms)",
                    done,
                    cur.entries as f64 / cur.secs
                );
            }
            windows.push(std::mem::replace(
                &mut cur,
                Window {
                    end: 0,
                    entries: 0,
                    secs: 0.0,
                    batch_ms: Vec::new(),
                },
            ));
        }
        if let Some((at, key)) = checkpoint_at {
            if checkpoint.is_none() && done >= at {
                let mut client = ledger.into_client();
                let t = Instant::now();
                let issued = checkpoint::issue(&mut client, key)
                    .await
                    .context("checkpoint::issue")?;
                let d = t.elapsed().as_secs_f64();
                checkpoint_secs += d;
                checkpoint = Some((issued.size, d * 1000.0));
                ledger = Ledger::new(client, None);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu1 = (cpu_secs("self"), cpu_secs(&backend_pid));
    let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    // The process's CPU includes generating and encoding the events and the
    // checkpoint; report it over the whole loop with `wall`.
    Ok(AppendRun {
        ledger,
        windows,
        append_secs,
        generate_secs,
        checkpoint,
        cpu_self: diff(cpu0.0, cpu1.0),
        cpu_backend: diff(cpu0.1, cpu1.1),
        wall: wall - checkpoint_secs,
    })
}

struct Timed {
    label: &'static str,
    samples: Vec<f64>,
    verified: usize,
}

impl Timed {
    fn row(&mut self) -> (String, serde_json::Value) {
        let n = self.samples.len();
        let (med, p99, max) = quantiles(&mut self.samples);
        (
            format!(
                "  {:<58} {:>5} {:>9.3} {:>9.3} {:>9.3} {:>9}",
                self.label,
                n,
                med,
                p99,
                max,
                format!("{}/{}", self.verified, n)
            ),
            json!({"n": n, "median_ms": med, "p99_ms": p99, "max_ms": max, "verified": self.verified}),
        )
    }
}

async fn entry_bytes(c: &Client, seq: u64) -> Result<Vec<u8>> {
    Ok(c.query_one(
        "SELECT entry FROM ledger_entries WHERE seq = $1",
        &[&(seq as i64)],
    )
    .await?
    .get(0))
}

fn to_bytes(p: &[cairn_tlog::Hash]) -> Vec<Vec<u8>> {
    p.iter().map(|h| h.0.to_vec()).collect()
}

/// The Merkle tree's share of an append: `tree::append` alone (the stored
/// hashes a batch of `batch` new leaves completes, and the new root) at the
/// current size, in a transaction that is rolled back. Milliseconds.
async fn tree_cost(client: &mut Client, size: u64, batch: usize, reps: usize) -> Result<Vec<f64>> {
    let mut rng = Rng(size);
    let mut out = Vec::new();
    for _ in 0..reps {
        let leaves: Vec<[u8; 32]> = (0..batch).map(|_| rng.bytes32()).collect();
        let tx = client.transaction().await?;
        let t = Instant::now();
        tree::append(&tx, size, &leaves).await?;
        out.push(ms(t.elapsed()));
        tx.rollback().await?;
    }
    Ok(out)
}

async fn run(args: &Args, tmp: &std::path::Path) -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("Cairn audit ledger load benchmark (services/audit-ledger/examples/ledger_load.rs)");
    println!(
        "  entries {}, batch {}, window {}, proofs {}, seed {}",
        args.entries, args.batch, args.window, args.proofs, args.seed
    );
    println!(
        "  machine: {cpus} CPUs; load average (1, 5, 15 min) before: {}",
        load.join(" ")
    );

    match &args.via_nats {
        Some(url) => end_to_end(args, url).await,
        None => measure(args, tmp, &load).await,
    }
}

/// The ledger worker as `cairn serve ledger` runs it: events in from
/// JetStream, appended in batches, each entry re-published on `audit.entry`
/// before its event is acknowledged.
async fn end_to_end(args: &Args, url: &str) -> Result<()> {
    let nats = cairn_bus::NatsConfig {
        url: url.to_string(),
        prefix: unique_name().replace("cairn_bench_", "lbench"),
        ..Default::default()
    };
    let bus = cairn_bus::Bus::connect(&nats, "ledger-load").await?;
    bus.ensure_topology(&[]).await?;
    let result = async {
        let (name, client) = create(&args.pg).await?;
        let mut workload = Workload::new(args.seed);
        let events = workload.take(args.entries as usize);
        println!(
            "  end to end via {url} (prefix {}): {} events, avg {:.1} bytes",
            nats.prefix,
            events.len(),
            workload.bytes as f64 / events.len() as f64
        );
        let started = Instant::now();
        let mut pipe = cairn_bus::Pipeline::new(bus.js.clone(), 256);
        for (raw, env) in &events {
            pipe.publish(
                bus.subjects.event(&env.event, &env.backup_id),
                env.id.to_string(),
                raw.clone().into(),
            )
            .await?;
        }
        pipe.flush().await?;
        let published = started.elapsed();
        println!(
            "  published to EVENTS: {:.1} s ({:.0} events/s)",
            published.as_secs_f64(),
            events.len() as f64 / published.as_secs_f64()
        );
        let (watch, conn) =
            tokio_postgres::connect(&format!("{} dbname={name}", args.pg), NoTls).await?;
        tokio::spawn(conn);
        let started = Instant::now();
        let worker = tokio::spawn(cairn_audit_ledger::run(bus.clone(), client, 500));
        let mut marks = Vec::new();
        let mut next_mark = args.window;
        loop {
            let size: i64 = watch
                .query_one("SELECT size FROM ledger_head", &[])
                .await?
                .get(0);
            let size = size as u64;
            while size >= next_mark && next_mark <= args.entries {
                marks.push((next_mark, started.elapsed()));
                next_mark += args.window;
            }
            if size >= args.entries {
                break;
            }
            if worker.is_finished() {
                bail!("the ledger worker stopped at {size} entries");
            }
            if started.elapsed() > Duration::from_secs(3600) {
                bail!("the ledger holds {size} of {} entries after an hour", args.entries);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        worker.abort();
        let mut audit = bus.js.get_stream(bus.subjects.audit_stream()).await?;
        let republished = audit.info().await?.state.messages;
        println!(
            "  ledger worker: {} entries in {:.1} s = {:.0} entries/s end to end; {} re-published on audit.entry",
            args.entries,
            took.as_secs_f64(),
            args.entries as f64 / took.as_secs_f64(),
            republished
        );
        let mut prev = (0u64, Duration::ZERO);
        for (n, at) in &marks {
            println!(
                "    {:>9}–{:<9} {:>8.0} entries/s",
                prev.0 + 1,
                n,
                (n - prev.0) as f64 / (*at - prev.1).as_secs_f64()
            );
            prev = (*n, *at);
        }
        if republished != args.entries {
            bail!("{republished} entries re-published, {} expected", args.entries);
        }
        // `audit verify` as an auditor runs it: the whole copy on audit.entry
        // read back and compared, besides recomputing the log.
        let t = Instant::now();
        let witnesses = check::gather(None, None, Ok(&bus), None, None).await;
        let gathered = t.elapsed();
        let report = check::verify(&watch, witnesses).await?;
        let verified = t.elapsed();
        if !report.problems.is_empty() || report.published_entries_compared != args.entries {
            bail!(
                "audit verify: {} compared, problems {:?}",
                report.published_entries_compared,
                report.problems
            );
        }
        println!(
            "  audit verify with the published copy: {:.1} s (reading audit.entry {:.1} s), {} entries compared",
            verified.as_secs_f64(),
            gathered.as_secs_f64(),
            report.published_entries_compared
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "ledger_load_end_to_end",
                "entries": args.entries,
                "publish_secs": published.as_secs_f64(),
                "ledger_secs": took.as_secs_f64(),
                "entries_per_s": (args.entries as f64 / took.as_secs_f64()).round(),
                "republished": republished,
                "verify_secs": verified.as_secs_f64(),
                "verify_read_audit_secs": gathered.as_secs_f64(),
            })
        );
        drop_db(&args.pg, &name).await
    }
    .await;
    bus.delete_topology().await?;
    result
}

async fn measure(args: &Args, tmp: &std::path::Path, load_before: &[&str]) -> Result<()> {
    // Batch-size comparison first, each in a fresh database of its own.
    let mut compare = Vec::new();
    for &b in &args.compare {
        let (name, client) = create(&args.pg).await?;
        let mut work = Workload::new(args.seed);
        let n = args.compare_entries;
        let r = append_run(client, &mut work, n, b, n, None, false).await?;
        drop(r.ledger);
        drop_db(&args.pg, &name).await?;
        let rate = n as f64 / r.append_secs;
        println!("  batch {b:>5}: first {n} entries in a fresh database: {rate:.0} entries/s");
        compare.push((b, n, rate));
    }

    let (name, client) = create(&args.pg).await?;
    let server: String = client.query_one("SELECT version()", &[]).await?.get(0);
    let mut settings = Vec::new();
    for s in [
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_wal_size",
    ] {
        let v: String = client.query_one(&format!("SHOW {s}"), &[]).await?.get(0);
        settings.push(format!("{s}={v}"));
    }
    println!("  PostgreSQL: {server}");
    println!("  server settings: {}", settings.join(" "));
    println!("  database: {name} (fresh, migrated by db::open; dropped at the end)");

    // Round-trip cost of one prepared statement on this connection.
    let st = client.prepare("SELECT $1::bigint").await?;
    let mut rtt = Vec::new();
    for i in 0..2000i64 {
        let t = Instant::now();
        client.query_one(&st, &[&i]).await?;
        rtt.push(ms(t.elapsed()) * 1000.0);
    }
    let (rtt_us, _, _) = quantiles(&mut rtt);
    // The same statement sent as SQL text: tokio-postgres prepares it (one
    // round trip) and then executes it (another).
    let mut rtt_text = Vec::new();
    for i in 0..2000i64 {
        let t = Instant::now();
        client.query_one("SELECT $1::bigint", &[&i]).await?;
        rtt_text.push(ms(t.elapsed()) * 1000.0);
    }
    let (rtt_text_us, _, _) = quantiles(&mut rtt_text);

    let (skey, vkey) = cairn_tlog::checkpoint::generate("bench.cairn.example/ledger")?;
    let key_file: PathBuf = tmp.join("log.key");
    std::fs::write(&key_file, skey)?;
    let half = (args.entries / 2).max(1);

    println!();
    println!(
        "Appending {} entries through Ledger::append, batches of {}:",
        args.entries, args.batch
    );
    let mut work = Workload::new(args.seed);
    let r = append_run(
        client,
        &mut work,
        args.entries,
        args.batch,
        args.window,
        Some((half, &key_file)),
        true,
    )
    .await?;
    let mut client = r.ledger.into_client();
    let size = args.entries;
    let rate = size as f64 / r.append_secs;
    let avg = work.bytes as f64 / size as f64;

    let t = Instant::now();
    let issued = checkpoint::issue(&mut client, &key_file)
        .await
        .context("final checkpoint")?;
    let final_cp_ms = ms(t.elapsed());
    if issued.size != size {
        bail!("checkpoint at {} but the log holds {size}", issued.size);
    }
    let root = issued.root;
    let head_root: Vec<u8> = client
        .query_one("SELECT tree_root FROM ledger_head WHERE id = 1", &[])
        .await?
        .get(0);
    if head_root != root.0 {
        bail!("head root differs from the root computed from the tree");
    }

    println!();
    println!("Proofs at {size} entries (each with a fresh hash cache, as one `cairn audit prove` call has):");
    let mut rng = Rng(args.seed ^ 0xA5A5_5A5A);
    let mut root_t = Timed {
        label: "root of the whole tree (tree::root, tree_hash)",
        samples: Vec::new(),
        verified: 0,
    };
    for _ in 0..args.proofs.clamp(1, 100) {
        let t = Instant::now();
        let h = tree::root(&client, &mut Known::new(), size).await?;
        root_t.samples.push(ms(t.elapsed()));
        if h == root {
            root_t.verified += 1;
        }
    }
    let mut incl = Timed {
        label: "inclusion proof (tree::compute + prove_record)",
        samples: Vec::new(),
        verified: 0,
    };
    let mut incl_root = Timed {
        label: "inclusion proof + root of that size (fresh cache each)",
        samples: Vec::new(),
        verified: 0,
    };
    for _ in 0..args.proofs {
        let seq = 1 + rng.below(size);
        let t = Instant::now();
        let proof = prove::entry_proof(&client, &mut Known::new(), size, seq).await?;
        incl.samples.push(ms(t.elapsed()));
        let leaf = cairn_tlog::leaf_hash(&entry_bytes(&client, seq).await?);
        cairn_tlog::verify_inclusion(seq - 1, size, &leaf.0, &to_bytes(&proof), &root.0)
            .with_context(|| format!("inclusion proof of entry {seq}"))?;
        incl.verified += 1;
        // Proof and root together, against a random earlier size as well.
        let at = seq + rng.below(size - seq + 1);
        let t = Instant::now();
        let mut known = Known::new();
        let proof = prove::entry_proof(&client, &mut known, at, seq).await?;
        let r = tree::root(&client, &mut known, at).await?;
        incl_root.samples.push(ms(t.elapsed()));
        cairn_tlog::verify_inclusion(seq - 1, at, &leaf.0, &to_bytes(&proof), &r.0)
            .with_context(|| format!("inclusion proof of entry {seq} in {at}"))?;
        incl_root.verified += 1;
    }
    let mut e2e = Timed {
        label: "inclusion, end to end (prove::inclusion → proof file)",
        samples: Vec::new(),
        verified: 0,
    };
    let cosigned = BTreeMap::new();
    for _ in 0..args.proofs {
        let seq = 1 + rng.below(size);
        let t = Instant::now();
        let p = prove::inclusion(&client, seq, &cosigned).await?;
        e2e.samples.push(ms(t.elapsed()));
        let (_, cp) = cairn_tlog::proof_file::check(&p.file, &p.entry, &vkey)
            .with_context(|| format!("proof file of entry {seq}"))?;
        if cp.size() != size || p.seq != seq {
            bail!("proof of entry {seq} against size {}", cp.size());
        }
        e2e.verified += 1;
    }
    let mut cons = Timed {
        label: "consistency proof (tree::consistency_proof, prove_tree)",
        samples: Vec::new(),
        verified: 0,
    };
    for _ in 0..args.proofs {
        let old = 1 + rng.below(size - 1);
        let new = old + 1 + rng.below(size - old);
        let t = Instant::now();
        let proof = tree::consistency_proof(&client, &mut Known::new(), old, new).await?;
        cons.samples.push(ms(t.elapsed()));
        let r_old = tree::root(&client, &mut Known::new(), old).await?;
        let r_new = tree::root(&client, &mut Known::new(), new).await?;
        cairn_tlog::verify_consistency(old, new, &to_bytes(&proof), &r_old.0, &r_new.0)
            .with_context(|| format!("consistency proof {old} → {new}"))?;
        cons.verified += 1;
    }
    let mut cons_cp = Timed {
        label: "consistency, signed checkpoints (prove::consistency)",
        samples: Vec::new(),
        verified: 0,
    };
    if let Some((old, _)) = r.checkpoint {
        for _ in 0..args.proofs.clamp(1, 100) {
            let t = Instant::now();
            let file = prove::consistency(&client, old, size).await?;
            cons_cp.samples.push(ms(t.elapsed()));
            cairn_tlog::proof_file::check_consistency(&file, &vkey)
                .context("consistency proof file")?;
            cons_cp.verified += 1;
        }
    }
    println!(
        "  {:<58} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "what", "n", "median ms", "p99 ms", "max ms", "verified"
    );
    let mut proofs_json = serde_json::Map::new();
    for (key, t) in [
        ("root", &mut root_t),
        ("inclusion", &mut incl),
        ("inclusion_with_root", &mut incl_root),
        ("inclusion_end_to_end", &mut e2e),
        ("consistency", &mut cons),
        ("consistency_checkpoints", &mut cons_cp),
    ] {
        if t.samples.is_empty() {
            continue;
        }
        let (line, v) = t.row();
        println!("{line}");
        proofs_json.insert(key.into(), v);
    }
    println!(
        "  verified: inclusion proofs with cairn_tlog::verify_inclusion against the signed root;"
    );
    println!(
        "  proof files with cairn_tlog::proof_file::check (signature + proof); consistency with"
    );
    println!("  cairn_tlog::verify_consistency against roots recomputed from the tree.");

    println!();
    let mut tc = tree_cost(&mut client, size, args.batch, 20).await?;
    let (tree_ms, _, tree_max) = quantiles(&mut tc);
    let batch_ms = r.append_secs * 1000.0 * args.batch as f64 / size as f64;
    println!(
        "The tree's share of an append at {size} entries: tree::append for {} new leaves (rolled back, 20 times) \
         median {tree_ms:.1} ms, max {tree_max:.1} ms, of {batch_ms:.0} ms per Ledger::append of {} entries on average",
        args.batch, args.batch
    );

    println!();
    let t = Instant::now();
    let report = check::verify(&client, check::Witnesses::default()).await?;
    let verify_secs = t.elapsed().as_secs_f64();
    if !report.problems.is_empty() || report.entries != size {
        bail!(
            "audit verify found problems in {} entries: {:?}",
            report.entries,
            report.problems
        );
    }
    if report.merkle_root != hex::encode(root.0) {
        bail!("audit verify's root differs from the tree's");
    }
    println!(
        "Full audit verify (check::verify, Witnesses::default()) over {size} entries: {verify_secs:.2} s ({:.0} entries/s), no problems, same root",
        size as f64 / verify_secs
    );

    let mut sizes = Vec::new();
    for t in [
        "ledger_entries",
        "ledger_tree",
        "object_digests",
        "chunk_copies",
        "backups",
    ] {
        let b: i64 = client
            .query_one("SELECT pg_total_relation_size($1::text::regclass)", &[&t])
            .await?
            .get(0);
        sizes.push((t, b));
    }
    let db_bytes: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    drop(client);
    drop_db(&args.pg, &name).await?;

    // Report.
    let mib = |b: i64| b as f64 / 1048576.0;
    println!();
    println!("== Summary ==");
    println!(
        "Workload: {} backups; avg entry {avg:.1} bytes (min {}, max {}); kinds:",
        work.backups, work.min_len, work.max_len
    );
    for (k, n) in &work.kinds {
        println!("  {k:<18} {n:>9} ({:.1}%)", *n as f64 * 100.0 / size as f64);
    }
    println!();
    println!(
        "Appends (Ledger::append, one connection, batches of {}):",
        args.batch
    );
    println!(
        "  {:<22} {:>10} {:>13} {:>13} {:>13}",
        "entries", "entries/s", "batch p50 ms", "batch p99 ms", "batch max ms"
    );
    let mut windows_json = Vec::new();
    let mut all_batches = Vec::new();
    let mut start = 1u64;
    for w in &r.windows {
        let (p50, p99, max) = quantiles(&mut w.batch_ms.clone());
        all_batches.extend_from_slice(&w.batch_ms);
        let wr = w.entries as f64 / w.secs;
        println!(
            "  {:<22} {:>10.0} {:>13.1} {:>13.1} {:>13.1}",
            format!("{start}–{}", w.end),
            wr,
            p50,
            p99,
            max
        );
        windows_json.push(
            json!({"first": start, "last": w.end, "entries_per_s": wr.round(),
            "batch_p50_ms": p50, "batch_p99_ms": p99, "batch_max_ms": max}),
        );
        start = w.end + 1;
    }
    let (p50, p99, max) = quantiles(&mut all_batches);
    println!(
        "  {:<22} {:>10.0} {:>13.1} {:>13.1} {:>13.1}",
        "overall", rate, p50, p99, max
    );
    let first = r.windows.first().map(|w| w.entries as f64 / w.secs);
    let last = r.windows.last().map(|w| w.entries as f64 / w.secs);
    if let (Some(f), Some(l)) = (first, last) {
        println!(
            "  last window / first window: {:.2} ({:+.0}%)",
            l / f,
            (l / f - 1.0) * 100.0
        );
    }
    for (b, n, cr) in &compare {
        println!(
            "  batch {b}: first {n} entries (fresh database): {cr:.0} entries/s (batch {}: {:.0} in the first window above)",
            args.batch,
            first.unwrap_or(f64::NAN)
        );
    }
    println!(
        "  timed: only the Ledger::append calls ({:.1} s); generating and encoding the events took {:.1} s more",
        r.append_secs, r.generate_secs
    );
    if let (Some(s), Some(b)) = (r.cpu_self, r.cpu_backend) {
        println!(
            "  CPU over the {:.1} s append loop: this process {s:.1} s (incl. event generation), its PostgreSQL backend {b:.1} s",
            r.wall
        );
    }
    println!(
        "  one round trip on this connection (median of 2000): {rtt_us:.0} µs with a prepared statement, \
         {rtt_text_us:.0} µs for the same statement sent as SQL text (prepare + execute)"
    );
    println!(
        "  Ledger::append took {:.0} µs per entry; every statement it waits for costs at least one round trip",
        r.append_secs * 1e6 / size as f64
    );
    if let Some((at, cms)) = r.checkpoint {
        println!("Checkpoints (checkpoint::issue): at {at} entries {cms:.1} ms; at {size} (with the consistency proof from {at}) {final_cp_ms:.1} ms");
    }
    println!("Full audit verify at {size} entries: {verify_secs:.2} s");
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_after = load_after
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    println!("Load average (1, 5, 15 min) after: {load_after}");
    println!(
        "Database after the run: {:.0} MiB ({})",
        mib(db_bytes),
        sizes
            .iter()
            .map(|(t, b)| format!("{t} {:.0} MiB", mib(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let incl_med = proofs_json
        .get("inclusion")
        .and_then(|v| v["median_ms"].as_f64())
        .unwrap_or(f64::NAN);
    let incl_max = proofs_json
        .get("inclusion")
        .and_then(|v| v["max_ms"].as_f64())
        .unwrap_or(f64::NAN);
    println!(
        "Targets: 10000 appends/s: {} ({rate:.0}/s); inclusion proof at {size} under 10 ms: {} (median {incl_med:.2} ms, max {incl_max:.2} ms)",
        if rate >= 10_000.0 { "met" } else { "MISSED" },
        if incl_med.is_nan() {
            "not measured"
        } else if incl_max < 10.0 {
            "met"
        } else if incl_med < 10.0 {
            "met at the median, not at the max"
        } else {
            "MISSED"
        }
    );
    let out = json!({
        "bench": "ledger_load",
        "entries": size,
        "batch": args.batch,
        "window": args.window,
        "seed": args.seed,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_before": load_before.join(" "),
        "postgres": server,
        "avg_entry_bytes": (avg * 10.0).round() / 10.0,
        "appends_per_s": rate.round(),
        "append_secs": r.append_secs,
        "generate_secs": r.generate_secs,
        "cpu_self_secs": r.cpu_self,
        "cpu_backend_secs": r.cpu_backend,
        "rtt_us": rtt_us,
        "rtt_text_us": rtt_text_us,
        "load_after": load_after,
        "windows": windows_json,
        "compare": compare.iter().map(|(b, n, cr)| json!({"batch": b, "entries": n, "entries_per_s": cr.round()})).collect::<Vec<_>>(),
        "checkpoint_ms": {"half": r.checkpoint.map(|c| c.1), "final": final_cp_ms},
        "proofs": proofs_json,
        "tree_append_batch_ms": tree_ms,
        "verify_secs": verify_secs,
        "db_bytes": db_bytes,
    });
    println!("{out}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ledger_load: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The checkpoint signing key and its state file live here.
    let tmp = std::env::temp_dir().join(unique_name());
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        eprintln!("ledger_load: {}: {e}", tmp.display());
        return std::process::ExitCode::FAILURE;
    }
    let code = rt.block_on(async {
        let result = tokio::select! {
            r = run(&args, &tmp) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        let left: Vec<String> = CREATED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for name in left {
            if let Err(e) = drop_db(&args.pg, &name).await {
                eprintln!("ledger_load: could not drop database {name}: {e:#}");
            }
        }
        match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ledger_load: {e:#}");
                std::process::ExitCode::FAILURE
            }
        }
    });
    let _ = std::fs::remove_dir_all(&tmp);
    code
}
