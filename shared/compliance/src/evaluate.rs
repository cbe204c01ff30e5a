//! Judging one backup against one profile: every rule passes or fails (or
//! does not apply: a forgotten backup has no copies left to judge), with
//! what was found and the evidence for it. A pure function of the facts
//! the ledger and the configuration gave ([`crate::gather`]) and of the
//! time, which the caller passes in so tests and auditors can pick it.

use crate::network::{Immutability, NetworkFacts};
use crate::profile::{Demand, Profile, CIPHER};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A ledger entry a finding rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cited {
    pub seq: u64,
    pub kind: String,
    pub at: DateTime<Utc>,
}

/// What the ledger and configuration say of one backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupFacts {
    pub backup_id: String,
    pub dataset: String,
    pub tags: Vec<String>,
    /// The ledger's status: completed, degraded, failed, forgotten, or one
    /// of the running ones.
    pub status: String,
    pub requested_at: DateTime<Utc>,
    pub targets: Vec<String>,
    /// Networks verify found holding the whole backup (for an
    /// erasure-coded one, its part of it).
    pub verified: Vec<String>,
    /// For an erasure-coded backup, its coding: any `k` of its networks
    /// rebuild it, so it counts as whole copies only beyond `k - 1`.
    pub erasure: Option<cairn_events::Erasure>,
    /// Why it is not completed, as its outcome says (a refusal names the
    /// rule that refused it).
    pub reasons: Vec<String>,
    /// The terminal entry (completed, degraded or failed).
    pub outcome: Option<Cited>,
    /// The manifest's `object.sealed`: encrypt sealed it.
    pub sealed: Option<Cited>,
    /// `backup.ingested`, and the dataset key the data key is wrapped to.
    pub ingested: Option<Cited>,
    pub dataset_key: Option<String>,
    pub forgotten: Option<Cited>,
    /// The legal hold on it, if any: reason and entry.
    pub held: Option<(String, Cited)>,
    /// Its newest entry: what a checkpoint must cover.
    pub last_seq: u64,
    /// Until when a compliance rule keeps it, as ingest recorded it: where
    /// networks lock objects, verify locks every object that long.
    pub retain_until: Option<DateTime<Utc>>,
    /// Per network that locks objects: until when verify saw every object
    /// of the backup locked.
    pub locked_until: BTreeMap<String, DateTime<Utc>>,
    /// Networks where the last `backup.locked` placed a legal hold on its
    /// objects (and did not fail on any).
    pub legal_hold_on: Vec<String>,
    /// Its migration to an archive network, and its leaving the regular
    /// ones, if they happened.
    pub migrated: Option<Cited>,
    pub left: Option<Cited>,
}

/// What the ledger says of the backup's dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetFacts {
    /// `[datasets.<name>] shreddable` (default true).
    pub shreddable: bool,
    /// The dataset's backups under legal hold.
    pub holds: Vec<String>,
    pub shredded: Option<Cited>,
    /// The newest successful restore drill: backup and entry.
    pub last_drill: Option<(String, Cited)>,
    /// Its backups a compliance retention rule keeps now, each with the
    /// rule (erasure yields to them: GDPR Art. 17(3)(b)).
    pub kept_by_rule: Vec<String>,
}

/// The newest threshold split of the master key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub threshold: u8,
    pub count: u8,
    pub entry: Cited,
}

/// What the ledger and configuration say of the repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepoFacts {
    pub format: u32,
    pub split: Option<Split>,
    /// A rotation of the master key after that split (the shares then open
    /// nothing).
    pub rotated_after_split: Option<Cited>,
    pub networks: Vec<NetworkFacts>,
    /// The newest signed checkpoint's size, and whether a witness
    /// cosigned one at least as large.
    pub checkpoint: Option<u64>,
    pub cosigned: Option<u64>,
}

/// A rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The backup is gone or still running: nothing to judge.
    NotApplicable,
}

/// Evidence beside the ledger entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cite {
    /// A ledger entry (its bytes and inclusion proof are in the document).
    Entry { seq: u64, kind: String },
    /// A network's configuration.
    Network { network: String, fact: String },
    /// A signed checkpoint of the log.
    Checkpoint { size: u64, cosigned: bool },
}

impl From<&Cited> for Cite {
    fn from(c: &Cited) -> Cite {
        Cite::Entry {
            seq: c.seq,
            kind: c.kind.clone(),
        }
    }
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub profile: String,
    pub rule: String,
    pub control: String,
    pub kind: String,
    pub demand: String,
    pub verdict: Verdict,
    /// What was found, in a sentence.
    pub detail: String,
    pub evidence: Vec<Cite>,
}

/// Every rule of `profile` for `backup`, as at `now`.
pub fn evaluate(
    name: &str,
    profile: &Profile,
    backup: &BackupFacts,
    dataset: &DatasetFacts,
    repo: &RepoFacts,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    profile
        .rules
        .iter()
        .map(|r| {
            let (verdict, detail, evidence) = judge(&r.demand, backup, dataset, repo, now);
            Finding {
                profile: name.to_string(),
                rule: r.id.clone(),
                control: r.control.clone(),
                kind: r.demand.kind().to_string(),
                demand: r.demand.describe(),
                verdict,
                detail,
                evidence,
            }
        })
        .collect()
}

/// When a backup taken at `taken` may first be forgotten under the
/// `min_retention` rules of `profiles`: the latest end among them, with the
/// rule that sets it (`profile/rule`).
pub fn retention_floor(
    profiles: &[(String, Profile)],
    taken: DateTime<Utc>,
) -> Option<(DateTime<Utc>, String)> {
    profiles
        .iter()
        .flat_map(|(name, p)| {
            p.rules.iter().filter_map(move |r| match r.demand {
                Demand::MinRetention { days } => Some((
                    taken + Duration::days(i64::from(days)),
                    format!("{name}/{}", r.id),
                )),
                _ => None,
            })
        })
        .max_by(|a, b| a.0.cmp(&b.0))
}

/// Why a compliance rule keeps a backup taken at `taken` at time `now`,
/// if one does: retention neither plans nor carries out its forgetting
/// before then. (A failed backup holds nothing worth keeping: callers do
/// not ask for one.)
pub fn floor_reason(
    profiles: &[(String, Profile)],
    taken: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<String> {
    let (until, rule) = retention_floor(profiles, taken)?;
    (now < until).then(|| format!("compliance {rule}: kept until {}", day(until)))
}

/// Why a compliance rule keeps a backup now, from what the ledger says of
/// it (status, and when it was requested or else finished), if one does. A
/// failed backup holds nothing to keep; one the ledger cannot date is kept
/// by any retention rule that applies to it.
pub fn kept_by_rule(
    profiles: &[(String, Profile)],
    status: &str,
    requested_at: Option<&str>,
    finished_at: Option<&str>,
    now: DateTime<Utc>,
) -> Option<String> {
    if status == "failed" {
        return None;
    }
    let (_, rule) = retention_floor(profiles, now)?;
    let taken = requested_at
        .or(finished_at)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match taken {
        Some(t) => floor_reason(profiles, t, now),
        None => Some(format!(
            "compliance {rule}: the ledger cannot date it, so it is kept"
        )),
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn networks(repo: &RepoFacts, names: &[String]) -> Vec<NetworkFacts> {
    names
        .iter()
        .map(|n| {
            repo.networks
                .iter()
                .find(|f| &f.name == n)
                .cloned()
                .unwrap_or(NetworkFacts {
                    name: n.clone(),
                    kind: "unconfigured".into(),
                    jurisdiction: None,
                    immutable: None,
                })
        })
        .collect()
}

type Judged = (Verdict, String, Vec<Cite>);

fn judge(
    d: &Demand,
    b: &BackupFacts,
    ds: &DatasetFacts,
    repo: &RepoFacts,
    now: DateTime<Utc>,
) -> Judged {
    use Verdict::*;
    if let (Demand::MinRetention { .. }, "failed") = (d, b.status.as_str()) {
        return (
            NotApplicable,
            "the backup failed: there is nothing to keep".into(),
            b.outcome.iter().map(Cite::from).collect(),
        );
    }
    // A shredded backup is gone as a forgotten one is, on the date of the
    // dataset's shred.
    let gone = b.forgotten.clone().or_else(|| {
        (b.status == "shredded")
            .then(|| ds.shredded.clone())
            .flatten()
    });
    if let Demand::MinRetention { days } = d {
        let due = b.requested_at + Duration::days(i64::from(*days));
        return match &gone {
            Some(f) if f.at < due => (
                Fail,
                format!(
                    "gone on {} after {} days, before the {days} days ran out ({})",
                    day(f.at),
                    (f.at - b.requested_at).num_days(),
                    day(due)
                ),
                vec![f.into()],
            ),
            Some(f) => (
                Pass,
                format!(
                    "kept {} days, gone on {}",
                    (f.at - b.requested_at).num_days(),
                    day(f.at)
                ),
                vec![f.into()],
            ),
            None => (
                Pass,
                format!(
                    "taken {}, kept: retention refuses to forget it before {}",
                    day(b.requested_at),
                    day(due)
                ),
                b.outcome.iter().map(Cite::from).collect(),
            ),
        };
    }
    if let Some(g) = &gone {
        return (
            NotApplicable,
            format!(
                "{}: no readable copy left to judge",
                if b.forgotten.is_some() {
                    "forgotten"
                } else {
                    "shredded"
                }
            ),
            vec![g.into()],
        );
    }
    if b.status == "shredded" {
        return (
            NotApplicable,
            "shredded: no readable copy left to judge".into(),
            vec![],
        );
    }
    if b.status == "failed" {
        return (
            NotApplicable,
            "the backup failed: nothing of it to judge".into(),
            b.outcome.iter().map(Cite::from).collect(),
        );
    }
    let finished = matches!(b.status.as_str(), "completed" | "degraded");
    let needs_copies = matches!(
        d,
        Demand::MinNetworks { .. } | Demand::ImmutableCopy { .. } | Demand::Jurisdictions { .. }
    );
    if !finished && needs_copies {
        return (
            NotApplicable,
            format!("still {}: not yet verified", b.status),
            vec![],
        );
    }
    let outcome: Vec<Cite> = b.outcome.iter().map(Cite::from).collect();
    match d {
        Demand::MinRetention { .. } => unreachable!("judged above"),
        Demand::MinNetworks { count } => {
            let n = b.verified.len();
            let detail = if n == 0 {
                format!("verified on no network ({} needed); the backup {}", count, b.status)
            } else if let Some(e) = b.erasure {
                // Shards: as many whole copies as networks it may lose, plus one.
                let copies = n.saturating_sub(e.k as usize - 1);
                let detail = format!(
                    "{e}, its shards verified on {}: it survives losing {} of them, as {copies} whole copies would ({copies} of {count} needed)",
                    b.verified.join(", "),
                    copies.saturating_sub(1)
                );
                return (if copies >= *count as usize { Pass } else { Fail }, detail, outcome);
            } else {
                format!("verified on {} ({n} of {count} needed)", b.verified.join(", "))
            };
            (if n >= *count as usize { Pass } else { Fail }, detail, outcome)
        }
        Demand::ImmutableCopy { governance_ok, .. } => {
            let verified = networks(repo, &b.verified);
            // An Object Lock counts for a backup a rule keeps only if verify
            // saw every object locked as long as the rule keeps it.
            let long_enough = |n: &NetworkFacts| match (&n.immutable, b.retain_until) {
                (Some(Immutability::ObjectLock { .. }), Some(until)) => {
                    b.locked_until.get(&n.name).is_some_and(|l| *l >= until)
                }
                _ => true,
            };
            let good: Vec<&NetworkFacts> = verified
                .iter()
                .filter(|n| n.immutable.as_ref().is_some_and(|i| i.satisfies(*governance_ok)))
                .filter(|n| long_enough(n))
                .collect();
            let mut evidence = outcome;
            evidence.extend(b.migrated.iter().map(Cite::from));
            evidence.extend(b.left.iter().map(Cite::from));
            for n in &verified {
                if let Some(i) = &n.immutable {
                    evidence.push(Cite::Network {
                        network: n.name.clone(),
                        fact: i.describe(),
                    });
                }
            }
            // Shards on immutable storage keep the backup only where there
            // are enough of them to rebuild it from those networks alone.
            if let Some(e) = b.erasure.filter(|e| !good.is_empty() && good.len() < e.k as usize) {
                return (
                    Fail,
                    format!(
                        "{e}: shards on immutable storage on {} only, and it takes {} to rebuild it from immutable storage alone",
                        good.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
                        e.k
                    ),
                    evidence,
                );
            }
            if good.is_empty() {
                let why = verified
                    .iter()
                    .map(|n| match &n.immutable {
                        Some(i) if !long_enough(n) => format!(
                            "{}: {}, but its objects are not shown locked until {}",
                            n.name,
                            i.describe(),
                            b.retain_until.map(day).unwrap_or_default()
                        ),
                        Some(i) => format!("{}: {}, not enough", n.name, i.describe()),
                        None => format!("{}: can delete", n.name),
                    })
                    .collect::<Vec<_>>();
                (
                    Fail,
                    if why.is_empty() {
                        "no verified copy at all".into()
                    } else {
                        format!("no verified copy on immutable storage ({})", why.join("; "))
                    },
                    evidence,
                )
            } else {
                let on = good
                    .iter()
                    .map(|n| {
                        let mut what = n.immutable.as_ref().map(|i| i.describe()).unwrap_or_default();
                        if let Some(l) = b.locked_until.get(&n.name) {
                            what.push_str(&format!("; every object locked until {}", day(*l)));
                        }
                        if b.legal_hold_on.contains(&n.name) {
                            what.push_str("; under legal hold");
                        }
                        format!("{} ({what})", n.name)
                    })
                    .collect::<Vec<_>>();
                (Pass, format!("verified copy on {}", on.join(", ")), evidence)
            }
        }
        Demand::Encryption { algorithm } => {
            let evidence: Vec<Cite> = b.sealed.iter().map(Cite::from).collect();
            if !algorithm.eq_ignore_ascii_case(CIPHER) {
                (Fail, format!("{algorithm} demanded; Cairn seals with {CIPHER}"), evidence)
            } else if b.sealed.is_none() {
                (
                    if finished { Fail } else { NotApplicable },
                    "the ledger shows no sealed manifest for this backup".into(),
                    evidence,
                )
            } else {
                (
                    Pass,
                    format!(
                        "every object sealed with {CIPHER} by encrypt before it was stored (repository format {}{})",
                        repo.format,
                        if b.dataset_key.is_some() {
                            "; its data key wrapped to its dataset's key"
                        } else {
                            ""
                        }
                    ),
                    evidence,
                )
            }
        }
        Demand::KeyCustody { min_threshold } => match (&repo.split, &repo.rotated_after_split) {
            (None, _) => (
                Fail,
                "the master key was never split into threshold shares (`cairn key split`)".into(),
                vec![],
            ),
            (Some(s), Some(r)) => (
                Fail,
                format!(
                    "the master key was rotated on {} after its split into {}-of-{} shares on {}: those shares open nothing now; split the new key",
                    day(r.at),
                    s.threshold,
                    s.count,
                    day(s.entry.at)
                ),
                vec![(&s.entry).into(), r.into()],
            ),
            (Some(s), None) => (
                if s.threshold >= *min_threshold { Pass } else { Fail },
                format!(
                    "master key split on {} into {} shares, any {} of which open it ({} needed); passphrase key files open it too",
                    day(s.entry.at),
                    s.count,
                    s.threshold,
                    min_threshold
                ),
                vec![(&s.entry).into()],
            ),
        },
        Demand::Jurisdictions { allowed } => {
            let mut held: Vec<String> = b.targets.clone();
            for v in &b.verified {
                if !held.contains(v) {
                    held.push(v.clone());
                }
            }
            let nets = networks(repo, &held);
            let outside: Vec<String> = nets
                .iter()
                .filter(|n| !n.in_jurisdiction(allowed))
                .map(|n| n.located())
                .collect();
            let evidence = nets
                .iter()
                .map(|n| Cite::Network {
                    network: n.name.clone(),
                    fact: format!(
                        "jurisdiction {}",
                        n.jurisdiction.as_deref().unwrap_or("unset")
                    ),
                })
                .collect();
            if outside.is_empty() {
                (
                    Pass,
                    format!("every copy in {}: {}", allowed.join(", "), nets.iter().map(|n| n.located()).collect::<Vec<_>>().join(", ")),
                    evidence,
                )
            } else {
                (Fail, format!("copies outside {}: {}", allowed.join(", "), outside.join(", ")), evidence)
            }
        }
        Demand::DrillWithin { days } => match &ds.last_drill {
            None => (
                Fail,
                format!("no restore drill of dataset {:?} has succeeded (`cairn drill`)", b.dataset),
                vec![],
            ),
            Some((backup, c)) => {
                let age = now - c.at;
                (
                    if age <= Duration::days(i64::from(*days)) { Pass } else { Fail },
                    format!(
                        "last successful drill of dataset {:?} restored {backup} on {}, {} days before {}",
                        b.dataset,
                        day(c.at),
                        age.num_days(),
                        day(now)
                    ),
                    vec![c.into()],
                )
            }
        },
        Demand::AuditEvidence { witnessed } => {
            let size = if *witnessed { repo.cosigned } else { repo.checkpoint };
            let what = if *witnessed { "cosigned" } else { "signed" };
            match size {
                Some(s) if s >= b.last_seq => (
                    Pass,
                    format!("its {} ledger entries up to {} are in the {what} checkpoint of size {s}", "all", b.last_seq),
                    vec![Cite::Checkpoint { size: s, cosigned: *witnessed }],
                ),
                Some(s) => (
                    Fail,
                    format!("its entries go to {}, and the newest {what} checkpoint covers only {s}: run `cairn audit checkpoint`", b.last_seq),
                    vec![Cite::Checkpoint { size: s, cosigned: *witnessed }],
                ),
                None => (
                    Fail,
                    format!("no {what} checkpoint of the ledger exists yet (`cairn audit checkpoint`{})", if *witnessed { ", and a witness" } else { "" }),
                    vec![],
                ),
            }
        }
        Demand::ErasurePossible {} => {
            let evidence: Vec<Cite> = b.ingested.iter().map(Cite::from).collect();
            if let Some(s) = &ds.shredded {
                (Pass, format!("dataset {:?} was shredded on {}", b.dataset, day(s.at)), vec![s.into()])
            } else if b.dataset_key.is_none() {
                (
                    Fail,
                    "its data key is not wrapped to a dataset key (a backup from before repository format 4): only forgetting it and collecting its chunks erases it".into(),
                    evidence,
                )
            } else if !ds.shreddable {
                (Fail, format!("dataset {:?} is configured shreddable = false", b.dataset), evidence)
            } else if !ds.kept_by_rule.is_empty() {
                (
                    Fail,
                    format!(
                        "a retention rule keeps backups of dataset {:?}, and `cairn shred` refuses while it does: {}",
                        b.dataset,
                        ds.kept_by_rule.join(", ")
                    ),
                    evidence,
                )
            } else if !ds.holds.is_empty() {
                (
                    Fail,
                    format!(
                        "a legal hold blocks erasure of dataset {:?}: {} held",
                        b.dataset,
                        ds.holds.join(", ")
                    ),
                    evidence,
                )
            } else {
                (
                    Pass,
                    format!(
                        "data key wrapped to dataset key {}; `cairn shred {}` would destroy it",
                        b.dataset_key.as_deref().unwrap_or_default(),
                        b.dataset
                    ),
                    evidence,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{builtin, ComplianceConfig};
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    fn cited(seq: u64, kind: &str, t: DateTime<Utc>) -> Cited {
        Cited {
            seq,
            kind: kind.into(),
            at: t,
        }
    }

    fn net(v: serde_json::Value) -> NetworkFacts {
        NetworkFacts::of(&cairn_networks::NetworkConfig::try_from(v).unwrap())
    }

    fn backup() -> BackupFacts {
        let t = at(2026, 1, 10);
        BackupFacts {
            backup_id: "b1".into(),
            dataset: "ledger".into(),
            tags: vec!["sox".into()],
            status: "completed".into(),
            requested_at: t,
            targets: vec!["local".into(), "vault".into()],
            verified: vec!["local".into(), "vault".into()],
            erasure: None,
            reasons: vec![],
            outcome: Some(cited(9, "backup.completed", t)),
            sealed: Some(cited(5, "object.sealed", t)),
            ingested: Some(cited(6, "backup.ingested", t)),
            dataset_key: Some("ab12".into()),
            forgotten: None,
            held: None,
            last_seq: 9,
            retain_until: None,
            locked_until: BTreeMap::new(),
            legal_hold_on: vec![],
            migrated: None,
            left: None,
        }
    }

    fn repo() -> RepoFacts {
        RepoFacts {
            format: 4,
            split: Some(Split {
                threshold: 2,
                count: 3,
                entry: cited(2, "key.split", at(2026, 1, 1)),
            }),
            rotated_after_split: None,
            networks: vec![
                net(serde_json::json!({"name": "local", "kind": "fs", "jurisdiction": "eu"})),
                net(
                    serde_json::json!({"name": "vault", "kind": "s3", "bucket": "b", "object_lock_days": 30, "jurisdiction": "us"}),
                ),
            ],
            checkpoint: Some(12),
            cosigned: None,
        }
    }

    fn dataset() -> DatasetFacts {
        DatasetFacts {
            shreddable: true,
            holds: vec![],
            shredded: None,
            last_drill: Some(("b1".into(), cited(11, "drill.completed", at(2026, 1, 11)))),
            kept_by_rule: vec![],
        }
    }

    fn verdicts(
        profile: &str,
        b: &BackupFacts,
        ds: &DatasetFacts,
        r: &RepoFacts,
        now: DateTime<Utc>,
    ) -> Vec<(String, Verdict)> {
        let p = builtin().remove(profile).unwrap();
        evaluate(profile, &p, b, ds, r, now)
            .into_iter()
            .map(|f| (f.rule, f.verdict))
            .collect()
    }

    #[test]
    fn a_sound_sox_backup_passes_every_rule_with_evidence() {
        let p = builtin().remove("sox").unwrap();
        let found = evaluate("sox", &p, &backup(), &dataset(), &repo(), at(2026, 2, 1));
        for f in &found {
            assert_eq!(f.verdict, Verdict::Pass, "{f:?}");
            assert!(!f.evidence.is_empty(), "{f:?}");
        }
        let imm = found.iter().find(|f| f.rule == "sox-immutable").unwrap();
        assert!(
            imm.detail
                .contains("vault (S3 Object Lock, compliance mode"),
            "{imm:?}"
        );
        let ret = found.iter().find(|f| f.rule == "sox-retention").unwrap();
        assert!(ret.detail.contains("before 2033-01-08"), "{ret:?}");
    }

    #[test]
    fn an_object_lock_counts_only_as_long_as_the_rule_keeps_the_backup() {
        let until = at(2033, 1, 8);
        let short = BackupFacts {
            retain_until: Some(until),
            locked_until: [("vault".to_string(), at(2026, 2, 9))].into(),
            ..backup()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &short,
            &dataset(),
            &repo(),
            at(2026, 2, 1),
        );
        let imm = f.iter().find(|x| x.rule == "sox-immutable").unwrap();
        assert!(
            imm.verdict == Verdict::Fail
                && imm.detail.contains("not shown locked until 2033-01-08"),
            "{imm:?}"
        );
        let long = BackupFacts {
            locked_until: [("vault".to_string(), until)].into(),
            legal_hold_on: vec!["vault".into()],
            ..short
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &long,
            &dataset(),
            &repo(),
            at(2026, 2, 1),
        );
        let imm = f.iter().find(|x| x.rule == "sox-immutable").unwrap();
        assert!(
            imm.verdict == Verdict::Pass
                && imm
                    .detail
                    .contains("every object locked until 2033-01-08; under legal hold"),
            "{imm:?}"
        );
    }

    #[test]
    fn the_drill_rule_fails_once_the_clock_passes_its_window() {
        let (b, ds, r) = (backup(), dataset(), repo());
        let drill = |now| {
            verdicts("sox", &b, &ds, &r, now)
                .into_iter()
                .find(|(id, _)| id == "sox-drill")
                .unwrap()
                .1
        };
        assert_eq!(drill(at(2026, 4, 10)), Verdict::Pass);
        assert_eq!(drill(at(2026, 4, 12)), Verdict::Fail);
        let none = DatasetFacts {
            last_drill: None,
            ..dataset()
        };
        let f = evaluate("sox", &builtin()["sox"], &b, &none, &r, at(2026, 2, 1));
        let d = f.iter().find(|f| f.rule == "sox-drill").unwrap();
        assert!(
            d.verdict == Verdict::Fail && d.detail.contains("cairn drill"),
            "{d:?}"
        );
    }

    #[test]
    fn shards_count_as_copies_only_beyond_k_and_immutable_ones_only_k_at_a_time() {
        let mut r = repo();
        for n in ["s3", "ipfs", "sia"] {
            r.networks.push(net(
                serde_json::json!({"name": n, "kind": "fs", "path": "/x"}),
            ));
        }
        let coded = |verified: &[&str]| BackupFacts {
            targets: vec![
                "local".into(),
                "vault".into(),
                "s3".into(),
                "ipfs".into(),
                "sia".into(),
            ],
            verified: verified.iter().map(|n| n.to_string()).collect(),
            erasure: Some(cairn_events::Erasure { k: 3, n: 5 }),
            ..backup()
        };
        let judge = |b: &BackupFacts, id: &str| {
            let f = evaluate("sox", &builtin()["sox"], b, &dataset(), &r, at(2026, 2, 1));
            f.into_iter().find(|x| x.rule == id).unwrap()
        };
        // Five networks of 3/5 survive losing two: three whole copies' worth.
        let all = coded(&["local", "vault", "s3", "ipfs", "sia"]);
        let c = judge(&all, "sox-copies");
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(
            c.detail.contains("as 3 whole copies would (3 of 2 needed)"),
            "{c:?}"
        );
        // Three of five: no network to spare, one copy's worth.
        let c = judge(&coded(&["local", "s3", "ipfs"]), "sox-copies");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.detail.contains("(1 of 2 needed)"), "{c:?}");
        // One locked network holds a shard, not a copy: three would rebuild it.
        let i = judge(&all, "sox-immutable");
        assert_eq!(i.verdict, Verdict::Fail, "{i:?}");
        assert!(
            i.detail
                .contains("shards on immutable storage on vault only, and it takes 3"),
            "{i:?}"
        );
    }

    #[test]
    fn copies_that_are_missing_or_mutable_fail_by_name() {
        let b = BackupFacts {
            status: "degraded".into(),
            verified: vec!["local".into()],
            ..backup()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &b,
            &dataset(),
            &repo(),
            at(2026, 2, 1),
        );
        let get = |id: &str| f.iter().find(|x| x.rule == id).unwrap();
        assert_eq!(get("sox-copies").verdict, Verdict::Fail);
        assert!(get("sox-copies").detail.contains("local (1 of 2 needed)"));
        assert_eq!(get("sox-immutable").verdict, Verdict::Fail);
        assert!(
            get("sox-immutable").detail.contains("local: can delete"),
            "{:?}",
            get("sox-immutable")
        );
        // A running backup is not judged on copies yet.
        let failed = BackupFacts {
            status: "failed".into(),
            verified: vec![],
            ..backup()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &failed,
            &dataset(),
            &repo(),
            at(2026, 2, 1),
        );
        assert!(
            f.iter().all(|x| x.verdict == Verdict::NotApplicable),
            "{f:?}"
        );
        let running = BackupFacts {
            status: "ingested".into(),
            verified: vec![],
            outcome: None,
            ..backup()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &running,
            &dataset(),
            &repo(),
            at(2026, 2, 1),
        );
        assert_eq!(
            f.iter().find(|x| x.rule == "sox-copies").unwrap().verdict,
            Verdict::NotApplicable
        );
    }

    #[test]
    fn a_backup_forgotten_too_early_fails_retention() {
        let early = BackupFacts {
            status: "forgotten".into(),
            forgotten: Some(cited(20, "backup.forgotten", at(2026, 6, 1))),
            ..backup()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &early,
            &dataset(),
            &repo(),
            at(2026, 7, 1),
        );
        let ret = f.iter().find(|x| x.rule == "sox-retention").unwrap();
        assert_eq!(ret.verdict, Verdict::Fail);
        assert!(
            ret.detail.contains("after 142 days")
                && ret.evidence
                    == vec![Cite::Entry {
                        seq: 20,
                        kind: "backup.forgotten".into()
                    }],
            "{ret:?}"
        );
        assert!(f
            .iter()
            .filter(|x| x.rule != "sox-retention")
            .all(|x| x.verdict == Verdict::NotApplicable));
    }

    #[test]
    fn a_shredded_backup_is_judged_as_gone_on_the_shred_date() {
        let shredded = BackupFacts {
            status: "shredded".into(),
            ..backup()
        };
        let ds = DatasetFacts {
            shredded: Some(cited(40, "dataset.shredded", at(2026, 3, 1))),
            ..dataset()
        };
        let f = evaluate(
            "sox",
            &builtin()["sox"],
            &shredded,
            &ds,
            &repo(),
            at(2026, 4, 1),
        );
        let ret = f.iter().find(|x| x.rule == "sox-retention").unwrap();
        assert!(
            ret.verdict == Verdict::Fail
                && ret.evidence
                    == vec![Cite::Entry {
                        seq: 40,
                        kind: "dataset.shredded".into()
                    }],
            "{ret:?}"
        );
        assert!(
            f.iter()
                .filter(|x| x.rule != "sox-retention")
                .all(|x| x.verdict == Verdict::NotApplicable && x.detail.starts_with("shredded")),
            "{f:?}"
        );
    }

    #[test]
    fn gdpr_judges_jurisdiction_and_erasure() {
        let (b, r) = (backup(), repo());
        let f = evaluate(
            "gdpr",
            &builtin()["gdpr"],
            &b,
            &dataset(),
            &r,
            at(2026, 2, 1),
        );
        let get = |id: &str| f.iter().find(|x| x.rule == id).unwrap().clone();
        let j = get("gdpr-jurisdiction");
        assert!(
            j.verdict == Verdict::Fail
                && j.detail.contains("vault (us)")
                && !j.detail.contains("local"),
            "{j:?}"
        );
        assert_eq!(get("gdpr-erasure").verdict, Verdict::Pass);
        let held = DatasetFacts {
            holds: vec!["b0".into()],
            ..dataset()
        };
        let f = evaluate("gdpr", &builtin()["gdpr"], &b, &held, &r, at(2026, 2, 1));
        let e = f.iter().find(|x| x.rule == "gdpr-erasure").unwrap();
        assert!(
            e.verdict == Verdict::Fail && e.detail.contains("b0 held"),
            "{e:?}"
        );
        let kept = DatasetFacts {
            kept_by_rule: vec!["b0 (compliance sox/sox-retention: kept until 2033-01-08)".into()],
            ..dataset()
        };
        let f = evaluate("gdpr", &builtin()["gdpr"], &b, &kept, &r, at(2026, 2, 1));
        let e = f.iter().find(|x| x.rule == "gdpr-erasure").unwrap();
        assert!(
            e.verdict == Verdict::Fail && e.detail.contains("sox-retention"),
            "{e:?}"
        );
        let old = BackupFacts {
            dataset_key: None,
            ..backup()
        };
        let f = evaluate(
            "gdpr",
            &builtin()["gdpr"],
            &old,
            &dataset(),
            &r,
            at(2026, 2, 1),
        );
        assert_eq!(
            f.iter().find(|x| x.rule == "gdpr-erasure").unwrap().verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn key_custody_and_audit_evidence() {
        let b = backup();
        let iso = |r: &RepoFacts| {
            evaluate(
                "iso27001",
                &builtin()["iso27001"],
                &b,
                &dataset(),
                r,
                at(2026, 2, 1),
            )
        };
        let get = |f: &[Finding], id: &str| f.iter().find(|x| x.rule == id).unwrap().clone();
        let ok = iso(&repo());
        assert_eq!(get(&ok, "iso-key-management").verdict, Verdict::Pass);
        assert_eq!(get(&ok, "iso-logging").verdict, Verdict::Pass);
        let rotated = RepoFacts {
            rotated_after_split: Some(cited(30, "key.rotated", at(2026, 1, 20))),
            ..repo()
        };
        let k = get(&iso(&rotated), "iso-key-management");
        assert!(
            k.verdict == Verdict::Fail && k.detail.contains("open nothing now"),
            "{k:?}"
        );
        let unsplit = RepoFacts {
            split: None,
            ..repo()
        };
        assert_eq!(
            get(&iso(&unsplit), "iso-key-management").verdict,
            Verdict::Fail
        );
        let behind = RepoFacts {
            checkpoint: Some(8),
            ..repo()
        };
        let a = get(&iso(&behind), "iso-logging");
        assert!(
            a.verdict == Verdict::Fail && a.detail.contains("covers only 8"),
            "{a:?}"
        );
        let witnessed: Profile = serde_json::from_value(serde_json::json!({"rules": [
            {"id": "w", "control": "c", "kind": "audit_evidence", "witnessed": true}]}))
        .unwrap();
        let f = evaluate("w", &witnessed, &b, &dataset(), &repo(), at(2026, 2, 1));
        assert!(
            f[0].verdict == Verdict::Fail && f[0].detail.contains("cosigned"),
            "{:?}",
            f[0]
        );
    }

    #[test]
    fn the_retention_floor_is_the_longest_rule() {
        let c = ComplianceConfig::default();
        let t = at(2026, 1, 10);
        let both = c.applying(&[], &["sox".into(), "hipaa".into()]);
        let (until, rule) = retention_floor(&both, t).unwrap();
        assert_eq!(
            (day(until).as_str(), rule.as_str()),
            ("2033-01-08", "sox/sox-retention")
        );
        assert!(retention_floor(&c.applying(&[], &["gdpr".into()]), t).is_none());
        assert_eq!(
            floor_reason(&both, t, at(2033, 1, 7)).as_deref(),
            Some("compliance sox/sox-retention: kept until 2033-01-08")
        );
        assert_eq!(floor_reason(&both, t, at(2033, 1, 9)), None);
        let taken = "2026-01-10T12:00:00Z";
        let now = at(2027, 1, 1);
        assert!(kept_by_rule(&both, "completed", Some(taken), None, now).is_some());
        assert!(kept_by_rule(&both, "completed", None, Some(taken), now).is_some());
        assert_eq!(kept_by_rule(&both, "failed", Some(taken), None, now), None);
        let undated = kept_by_rule(&both, "completed", None, None, now).unwrap();
        assert!(undated.contains("cannot date it"), "{undated}");
        let gdpr = c.applying(&[], &["gdpr".into()]);
        assert_eq!(kept_by_rule(&gdpr, "completed", None, None, now), None);
    }
}
