//! Least privilege on the bus: one NATS user per role, each allowed only
//! the subjects its work needs, and the connection options (NKey, TLS,
//! an inbox of its own) a process signs in with.
//!
//! What the permissions hold, whatever a process of a role is made to do:
//! - plaintext travels only as requests on `<p>.seal.>`, which ingest may
//!   publish and encrypt may answer; no other role may subscribe to them,
//!   and store is denied them outright;
//! - only the ledger publishes `<p>.audit.entry.>` and checkpoints;
//! - a factory publishes requests only for its own datasets (the dataset
//!   is a token of a request's subject, see `Subjects::request`);
//! - the console publishes nothing: it reads events and entries;
//! - only the operator (`cairn setup` and the other commands) makes or
//!   changes streams and consumers; the services run with
//!   `nats.manage_topology = false`.
//!
//! Each user's replies come to an inbox named after its public key
//! (`_INBOX_<key>`), so no role can read another's answers. The server
//! keeps only public keys: the seeds stay with the processes.

use crate::{BusError, NatsConfig};
use cairn_events::subjects::Subjects;
use std::sync::Mutex;
use std::time::Instant;

/// Who a NATS user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Setup and the commands an operator runs: everything.
    Operator,
    Ingest,
    Encrypt,
    Store,
    /// Verify, and `serve repair` (copies objects back).
    Verify,
    /// The ledger, and `serve checkpoint` (signs checkpoints).
    Ledger,
    /// Retention, its scheduler, collector, drills and migrations.
    Retention,
    /// The web console: reads only.
    Console,
    /// A governance service asking for backups of these datasets only.
    Factory {
        name: String,
        datasets: Vec<String>,
    },
}

impl Role {
    /// Every service role, in pipeline order (factories are named).
    pub const SERVICES: [Role; 8] = [
        Role::Operator,
        Role::Ingest,
        Role::Encrypt,
        Role::Store,
        Role::Verify,
        Role::Ledger,
        Role::Retention,
        Role::Console,
    ];

    /// The name its key file and comments go by (`factory-<name>`).
    pub fn name(&self) -> String {
        match self {
            Role::Operator => "operator".into(),
            Role::Ingest => "ingest".into(),
            Role::Encrypt => "encrypt".into(),
            Role::Store => "store".into(),
            Role::Verify => "verify".into(),
            Role::Ledger => "ledger".into(),
            Role::Retention => "retention".into(),
            Role::Console => "console".into(),
            Role::Factory { name, .. } => format!("factory-{name}"),
        }
    }
}

/// A factory's name must be a file-name token.
pub fn valid_factory_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "factory name {name:?}: expected 1-64 characters of [A-Za-z0-9_-]"
        ))
    }
}

/// What one user may publish and subscribe to (NATS wildcards).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub deny_publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub deny_subscribe: Vec<String>,
    /// May answer requests (encrypt): one reply to each, to whatever
    /// inbox asked, without a publish permission for inboxes.
    pub allow_responses: bool,
}

/// The inbox a user with public key `public` receives replies on.
pub fn inbox_prefix(public: &str) -> String {
    format!("_INBOX_{public}")
}

/// What `role` may do under `subjects`; `public` is its key (its inbox).
pub fn permissions(s: &Subjects, role: &Role, public: &str) -> Permissions {
    let p = s.prefix();
    let streams = [
        s.events_stream(),
        s.sealed_stream(),
        s.dlq_stream(),
        s.audit_stream(),
        s.schedules_stream(),
        s.runs_stream(),
    ];
    let mut out = Permissions::default();
    if *role == Role::Operator {
        out.publish.push(">".into());
        out.subscribe.push(">".into());
        return out;
    }
    out.subscribe.push(format!("{}.>", inbox_prefix(public)));
    // Reading what streams and consumers exist, and whether JetStream
    // has a quorum: every process checks at start and watches.
    out.publish.push("$JS.API.INFO".into());
    for st in &streams {
        out.publish.push(format!("$JS.API.STREAM.INFO.{st}"));
        out.publish.push(format!("$JS.API.CONSUMER.INFO.{st}.*"));
    }
    let events = |kinds: &[&str]| -> Vec<String> {
        kinds
            .iter()
            .map(|k| format!("{p}.evt.{k}.*"))
            .collect::<Vec<_>>()
    };
    // A stage pulling from its durable consumer, acking, dead-lettering.
    let work = |out: &mut Permissions, stream: &str, consumer: &str| {
        out.publish
            .push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"));
        out.publish.push(format!("$JS.ACK.{stream}.{consumer}.>"));
        out.publish.push(s.all_dlq());
        out.publish.extend(events(&["event.deadlettered"]));
    };
    // Reading a stream's messages: one by subject, or a replay through an
    // unnamed (ephemeral) consumer, the only kind this allows to create; a
    // replay's consumer has a name the server picks, so pulling allows
    // any name on the stream. (Pulled without an ack, a durable
    // consumer's message is delivered again to its own stage.)
    let read = |out: &mut Permissions, stream: &str| {
        out.publish.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        out.publish
            .push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        out.publish
            .push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
    };
    let ev = s.events_stream();
    match role {
        Role::Operator => unreachable!("returned above"),
        Role::Ingest => {
            work(&mut out, &ev, "ingest");
            read(&mut out, &ev);
            out.publish.extend(events(&[
                "backup.started",
                "backup.ingested",
                "backup.failed",
                "object.sealed",
                "dataset.keyed",
                "network.traffic",
            ]));
            out.publish.push(s.all_seal());
            out.publish.push(s.all_sealed());
            out.publish.push(format!("{p}.progress.*"));
            // Its lease on each backup it runs.
            out.publish.push(s.all_run_keys());
            out.publish
                .push(format!("$JS.API.STREAM.MSG.GET.{}", s.runs_stream()));
        }
        Role::Encrypt => {
            out.subscribe.push(s.all_seal());
            out.allow_responses = true;
            out.publish.push(s.all_sealed());
            out.publish
                .extend(events(&["object.sealed", "event.deadlettered"]));
            // A malformed request is dead-lettered (without its plaintext).
            out.publish.push(s.dlq("encrypt"));
        }
        Role::Store => {
            work(&mut out, &s.sealed_stream(), "*");
            // Which run of a backup counts (`runs`).
            out.publish
                .push(format!("$JS.API.STREAM.MSG.GET.{}", s.runs_stream()));
            out.publish
                .extend(events(&["object.stored", "network.traffic"]));
            out.deny_subscribe.push(s.all_seal());
            out.deny_publish.push(s.all_seal());
        }
        Role::Verify => {
            work(&mut out, &ev, "verify");
            read(&mut out, &ev);
            out.publish
                .push(format!("$JS.API.STREAM.MSG.GET.{}", s.runs_stream()));
            read(&mut out, &s.audit_stream());
            out.publish.extend(events(&[
                "backup.completed",
                "backup.degraded",
                "backup.failed",
                "backup.left",
                "backup.migrated",
                "object.stored",
                "network.traffic",
            ]));
            out.publish.push(s.cosigned());
        }
        Role::Ledger => {
            work(&mut out, &ev, "ledger");
            read(&mut out, &ev);
            read(&mut out, &s.audit_stream());
            out.publish.push(s.all_audit_entries());
            out.publish.push(s.checkpoint());
            // The checkpoint signer writes checkpoints to the networks.
            out.publish.extend(events(&["network.traffic"]));
        }
        Role::Retention => {
            work(&mut out, &ev, "retention");
            read(&mut out, &ev);
            read(&mut out, &s.schedules_stream());
            // Its scheduler asks for the backups schedules name, of any dataset.
            out.publish.push(s.events_of_kind("backup.requested"));
            out.publish.extend(events(&[
                "forget.requested",
                "forget.refused",
                "backup.forgotten",
                "backup.held",
                "backup.released",
                "chunks.marked",
                "chunks.revived",
                "chunks.condemned",
                "chunks.deleted",
                "collection.finished",
                "object.deleted",
                "drill.completed",
                "drill.failed",
                "schedule.added",
                "schedule.removed",
                "schedule.skipped",
                // Moving backups between networks (retention.migrate_interval_secs).
                "backup.migrated",
                "backup.left",
                "object.stored",
                "network.traffic",
            ]));
            out.publish.push(s.all_schedule_keys());
        }
        Role::Console => {
            out.subscribe.push(s.all_events());
            out.subscribe.push(s.all_audit_entries());
        }
        Role::Factory { datasets, .. } => {
            for d in datasets {
                out.publish.push(s.requests_of_dataset(d));
            }
            // Following what it asked for (backup ids are not known
            // before it asks): backup outcomes, progress, ledger entries.
            out.subscribe.push(format!("{p}.evt.backup.*.*"));
            out.subscribe.push(format!("{p}.progress.*"));
            out.subscribe.push(s.audit_entry("backup.*"));
        }
    }
    // Whatever else a role may do, only the ledger writes the ledger's
    // copy, and only encrypt (and ingest, asking) touches plaintext.
    if *role != Role::Ledger {
        out.deny_publish.push(s.all_audit_entries());
        out.deny_publish.push(s.checkpoint());
    }
    if !matches!(role, Role::Ingest | Role::Encrypt) {
        out.deny_subscribe.push(s.all_seal());
        if !out.deny_publish.contains(&s.all_seal()) {
            out.deny_publish.push(s.all_seal());
        }
    }
    out.deny_subscribe.dedup();
    out
}

/// One user of the server's `authorization` block.
#[derive(Debug, Clone)]
pub struct User {
    pub role: Role,
    pub public_key: String,
}

/// The `authorization { users = [...] }` block for nats-server (its own
/// config syntax, each user one JSON object with a comment naming it), to
/// `include` from the server's config.
pub fn authorization(s: &Subjects, users: &[User]) -> String {
    let mut out = String::from(
        "# Cairn's NATS users, one per role, written by `cairn nats users`.\n\
         # Only public keys are here; each process holds its own seed.\n\
         authorization {\n  users = [\n",
    );
    for u in users {
        let p = permissions(s, &u.role, &u.public_key);
        let mut perms = serde_json::json!({
            "publish": {"allow": p.publish},
            "subscribe": {"allow": p.subscribe},
        });
        if !p.deny_publish.is_empty() {
            perms["publish"]["deny"] = p.deny_publish.into();
        }
        if !p.deny_subscribe.is_empty() {
            perms["subscribe"]["deny"] = p.deny_subscribe.into();
        }
        if p.allow_responses {
            perms["allow_responses"] = true.into();
        }
        let what = match &u.role {
            Role::Factory { datasets, .. } => format!(" (datasets: {})", datasets.join(", ")),
            _ => String::new(),
        };
        out.push_str(&format!("    # {}{what}\n", u.role.name()));
        let user = serde_json::json!({"nkey": u.public_key, "permissions": perms});
        out.push_str(&format!("    {user}\n"));
    }
    out.push_str("  ]\n}\n");
    out
}

/// A fresh user key: (seed, public key).
pub fn new_user_key() -> (String, String) {
    let kp = nkeys::KeyPair::new_user();
    (
        kp.seed().expect("a new key pair has its seed"),
        kp.public_key(),
    )
}

/// The public key of a user seed (`SU...`).
pub fn public_key_of(seed: &str) -> Result<String, String> {
    let kp =
        nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| format!("not an NKey seed: {e}"))?;
    if !seed.trim().starts_with("SU") {
        return Err("not a user seed (it should start with SU)".into());
    }
    Ok(kp.public_key())
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Seed { path: String, detail: String },
    #[error("{0}")]
    Factory(String),
}

/// One user's key, as [`write_users`] left it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserKey {
    pub role: String,
    pub public_key: String,
    /// The seed file the role's processes name in `nats.nkey_file`.
    pub seed_file: std::path::PathBuf,
    /// Made now (false: an existing key kept).
    pub created: bool,
}

/// Makes (or keeps) a key for every service role and each factory in
/// `dir` (`<role>.nk`, readable by its owner only) and writes the
/// server's `authorization.conf` for them. Run again, it keeps every key
/// it finds, so adding a factory does not sign every service out.
pub fn write_users(
    dir: &std::path::Path,
    s: &Subjects,
    factories: &[(String, Vec<String>)],
) -> Result<(Vec<UserKey>, std::path::PathBuf), UsersError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| UsersError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut roles = Role::SERVICES.to_vec();
    for (name, datasets) in factories {
        valid_factory_name(name).map_err(UsersError::Factory)?;
        if datasets.is_empty() {
            return Err(UsersError::Factory(format!(
                "factory {name} names no dataset"
            )));
        }
        roles.push(Role::Factory {
            name: name.clone(),
            datasets: datasets.clone(),
        });
    }
    let mut keys = Vec::new();
    let mut users = Vec::new();
    for role in roles {
        let path = dir.join(format!("{}.nk", role.name()));
        let (public, created) = match std::fs::read_to_string(&path) {
            Ok(seed) => (
                public_key_of(&seed).map_err(|detail| UsersError::Seed {
                    path: path.display().to_string(),
                    detail,
                })?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (seed, public) = new_user_key();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io(&path))?;
                f.write_all(format!("{seed}\n").as_bytes())
                    .map_err(io(&path))?;
                (public, true)
            }
            Err(e) => return Err(io(&path)(e)),
        };
        keys.push(UserKey {
            role: role.name(),
            public_key: public.clone(),
            seed_file: path,
            created,
        });
        users.push(User {
            role,
            public_key: public,
        });
    }
    let conf = dir.join("authorization.conf");
    std::fs::write(&conf, authorization(s, &users)).map_err(io(&conf))?;
    Ok((keys, conf))
}

/// What NATS servers refused this process, newest last, with when: how
/// a refused sign-in or a permission violation (which the server reports
/// apart from the request it stopped) reaches the caller and the log.
static REFUSED: Mutex<Vec<(Instant, String)>> = Mutex::new(Vec::new());

fn remember(what: String) {
    tracing::error!(error = %what, "NATS refused");
    if let Ok(mut v) = REFUSED.lock() {
        if v.len() >= 64 {
            v.remove(0);
        }
        v.push((Instant::now(), what));
    }
}

/// The newest refusal since `since`.
pub fn refused_since(since: Instant) -> Option<String> {
    let v = REFUSED.lock().ok()?;
    v.iter()
        .rev()
        .find(|(t, _)| *t >= since)
        .map(|(_, w)| w.clone())
}

/// The server's refusal, since `since`, to let this process publish to
/// `subject`: why a publish had no answer.
pub fn publish_refused(since: Instant, subject: &str) -> Option<String> {
    let quoted = format!("\"{subject}\"");
    let v = REFUSED.lock().ok()?;
    v.iter()
        .rev()
        .find(|(t, w)| {
            *t >= since && w.to_ascii_lowercase().contains("publish") && w.contains(&quoted)
        })
        .map(|(_, w)| w.clone())
}

/// The connection options `cfg` asks for: its user's key and inbox, TLS.
/// Server errors are logged and kept ([`refused_since`]).
pub fn options(cfg: &NatsConfig) -> Result<async_nats::ConnectOptions, BusError> {
    let bad = |what: &str, detail: String| BusError::Connect {
        url: cfg.url.clone(),
        detail: format!("{what}: {detail}"),
    };
    let mut o = async_nats::ConnectOptions::new().event_callback(|event| async move {
        match event {
            async_nats::Event::ServerError(e) => remember(e.to_string()),
            // How a refused sign-in or a failed TLS handshake shows while
            // the client tries to connect.
            async_nats::Event::ClientError(e) => remember(e.to_string()),
            // A host cut off shows here (once `quorum::SILENT_FOR` ends
            // the wait): its stages' work stalls until the client is on
            // another node of the cluster.
            async_nats::Event::Disconnected => {
                tracing::warn!("the connection to NATS is lost; reconnecting")
            }
            async_nats::Event::Connected => tracing::info!("connected to NATS"),
            _ => {}
        }
    });
    if let Some(path) = &cfg.nkey_file {
        let name = path.display().to_string();
        let seed = std::fs::read_to_string(path)
            .map_err(|e| bad(&format!("nats.nkey_file {name}"), e.to_string()))?;
        let public = public_key_of(&seed).map_err(|e| bad(&format!("nats.nkey_file {name}"), e))?;
        o = o
            .nkey(seed.trim().to_string())
            .custom_inbox_prefix(inbox_prefix(&public));
    }
    if let Some(ca) = &cfg.tls_ca_file {
        // The NATS client takes the process's default TLS provider, and
        // the build has two (ring here, aws-lc for the S3 SDK): name one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if !ca.is_file() {
            return Err(bad(
                "nats.tls_ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
        o = o.require_tls(true).add_root_certificates(ca.clone());
    }
    match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(bad(
                "nats.tls_cert_file and nats.tls_key_file",
                "set both or neither".into(),
            ))
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Subjects {
        Subjects::new("c").unwrap()
    }

    /// Whether `subject` matches NATS wildcard `pattern`.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut t) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), t.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn may_publish(p: &Permissions, subject: &str) -> bool {
        p.publish.iter().any(|a| matches(a, subject))
            && !p.deny_publish.iter().any(|d| matches(d, subject))
    }
    fn may_subscribe(p: &Permissions, subject: &str) -> bool {
        p.subscribe.iter().any(|a| matches(a, subject))
            && !p.deny_subscribe.iter().any(|d| matches(d, subject))
    }

    fn every_role() -> Vec<Role> {
        let mut all = Role::SERVICES.to_vec();
        all.push(Role::Factory {
            name: "gov".into(),
            datasets: vec!["payroll".into(), "a.b".into()],
        });
        all
    }

    #[test]
    fn only_ingest_and_encrypt_touch_plaintext() {
        for role in every_role() {
            let p = permissions(&s(), &role, "UKEY");
            let sub = may_subscribe(&p, "c.seal.b1");
            let publ = may_publish(&p, "c.seal.b1");
            match role {
                Role::Operator => assert!(sub && publ),
                Role::Encrypt => assert!(sub && !publ, "{role:?}"),
                Role::Ingest => assert!(!sub && publ, "{role:?}"),
                _ => assert!(!sub && !publ, "{role:?} may touch plaintext"),
            }
        }
        let store = permissions(&s(), &Role::Store, "UKEY");
        assert!(store.deny_subscribe.contains(&"c.seal.>".to_string()));
    }

    #[test]
    fn only_the_ledger_writes_entries_and_checkpoints() {
        for role in every_role() {
            let p = permissions(&s(), &role, "UKEY");
            let writes = may_publish(&p, "c.audit.entry.backup.requested")
                || may_publish(&p, "c.audit.checkpoint");
            assert_eq!(
                writes,
                matches!(role, Role::Ledger | Role::Operator),
                "{role:?}"
            );
        }
    }

    #[test]
    fn a_factory_asks_for_its_own_datasets_only() {
        let f = every_role().pop().unwrap();
        let p = permissions(&s(), &f, "UKEY");
        assert!(may_publish(&p, "c.evt.backup.requested.b1.payroll"));
        assert!(may_publish(&p, "c.evt.backup.requested.b1.a%2Eb"));
        assert!(!may_publish(&p, "c.evt.backup.requested.b1.hr"));
        assert!(!may_publish(&p, "c.evt.forget.requested.b1"));
        assert!(!may_publish(&p, "c.evt.backup.completed.b1"));
        assert!(may_subscribe(&p, "c.evt.backup.completed.b1"));
        assert!(!may_subscribe(&p, "c.evt.object.stored.b1"));
    }

    #[test]
    fn the_console_publishes_nothing_but_questions_to_jetstream() {
        let p = permissions(&s(), &Role::Console, "UKEY");
        assert!(p.publish.iter().all(|a| a.starts_with("$JS.API.")));
        assert!(p.publish.iter().all(|a| a.contains(".INFO")));
        assert!(may_subscribe(&p, "c.evt.backup.completed.b1"));
        assert!(may_subscribe(&p, "c.audit.entry.backup.completed"));
    }

    #[test]
    fn replies_come_to_an_inbox_of_ones_own() {
        for role in every_role().into_iter().skip(1) {
            let p = permissions(&s(), &role, "UKEY");
            assert!(may_subscribe(&p, "_INBOX_UKEY.x.y"), "{role:?}");
            assert!(!may_subscribe(&p, "_INBOX_UOTHER.x.y"), "{role:?}");
            assert!(!may_subscribe(&p, "_INBOX.x.y"), "{role:?}");
        }
    }

    #[test]
    fn only_the_operator_makes_or_removes_streams() {
        for role in every_role().into_iter().skip(1) {
            let p = permissions(&s(), &role, "UKEY");
            for api in [
                "$JS.API.STREAM.CREATE.C_EVENTS",
                "$JS.API.STREAM.DELETE.C_EVENTS",
                "$JS.API.STREAM.PURGE.C_SEALED",
                "$JS.API.CONSUMER.DURABLE.CREATE.C_EVENTS.ingest",
                "$JS.API.CONSUMER.CREATE.C_EVENTS.ingest.c.evt.>",
                "$JS.API.CONSUMER.DELETE.C_EVENTS.ledger",
                "$JS.API.STREAM.MSG.DELETE.C_SEALED",
            ] {
                assert!(!may_publish(&p, api), "{role:?} {api}");
            }
        }
    }

    #[test]
    fn the_server_block_names_each_user_and_nothing_secret() {
        let (seed, public) = new_user_key();
        assert_eq!(public_key_of(&seed).unwrap(), public);
        let text = authorization(
            &s(),
            &[User {
                role: Role::Store,
                public_key: public.clone(),
            }],
        );
        assert!(text.contains("# store"));
        assert!(text.contains(&public));
        assert!(!text.contains(&seed));
        assert!(text.contains("\"deny\":[\"c.seal.>\""), "{text}");
        assert!(public_key_of(&public).is_err());
    }
}
