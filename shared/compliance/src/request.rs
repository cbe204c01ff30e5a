//! Before any byte moves: whether a backup request can satisfy the
//! profiles that apply to it. Ingest asks this first and fails the backup,
//! naming the rule, when it cannot (`backup.failed` records the refusal).
//!
//! Only what the request itself decides is judged here: where the copies
//! go, how many must be verified, whether one of them is immutable, the
//! cipher, and whether the dataset could be erased. Key custody, drills
//! and audit evidence are properties of the repository over time; `cairn
//! compliance check` judges those.

use crate::network::NetworkFacts;
use crate::profile::{Demand, Profile, CIPHER};

/// What a request would do.
#[derive(Debug, Clone)]
pub struct Planned<'a> {
    /// The target networks, resolved.
    pub targets: Vec<&'a NetworkFacts>,
    /// Verified copies the backup needs to count as completed (for an
    /// erasure-coded one, the whole copies it is worth: `n - k + 1`).
    pub min_copies: u32,
    /// For an erasure-coded backup, `k`: a shard is no copy, and it takes
    /// `k` immutable networks to keep it on immutable storage.
    pub shards_needed: Option<u32>,
    /// `[datasets.<name>] shreddable` (default true).
    pub shreddable: bool,
    /// The repository's format (dataset keys from 4 on).
    pub repo_format: u32,
    /// Every configured network (an archive a rule migrates to need not be
    /// a target).
    pub configured: &'a [NetworkFacts],
}

/// A request refused by a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("refused by compliance profile {profile}, rule {rule} ({control}): {why}; nothing was read or stored")]
pub struct Refusal {
    pub profile: String,
    pub rule: String,
    pub control: String,
    pub why: String,
}

/// The first rule of `profiles` that `plan` cannot satisfy.
pub fn check(profiles: &[(String, Profile)], plan: &Planned) -> Result<(), Refusal> {
    // Archives its profiles migrate it to hold copies too, and a rule that
    // releases the regular networks leaves the archive alone with it.
    let archives: Vec<&NetworkFacts> = profiles
        .iter()
        .flat_map(|(_, p)| p.archives())
        .filter_map(|(a, _)| plan.configured.iter().find(|n| n.name == a))
        .collect();
    let releasing = profiles.iter().find_map(|(name, p)| {
        p.rules.iter().find_map(|r| match &r.demand {
            Demand::ImmutableCopy {
                archive: Some(a),
                release_regular: true,
                ..
            } => Some(format!(
                "profile {name}'s rule {} moves it to {a} alone",
                r.id
            )),
            _ => None,
        })
    });
    for (name, p) in profiles {
        for r in &p.rules {
            let conflict = match (&r.demand, &releasing) {
                (Demand::MinNetworks { count }, Some(why)) if *count > 1 => Some(format!(
                    "it needs verified copies on at least {count} networks, and {why} (release_regular)"
                )),
                _ => None,
            };
            if let Some(why) = conflict.or_else(|| unmet(&r.demand, plan, &archives)) {
                return Err(Refusal {
                    profile: name.clone(),
                    rule: r.id.clone(),
                    control: r.control.clone(),
                    why,
                });
            }
        }
    }
    Ok(())
}

fn names(nets: &[&NetworkFacts]) -> String {
    nets.iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unmet(d: &Demand, plan: &Planned, archives: &[&NetworkFacts]) -> Option<String> {
    match d {
        Demand::MinNetworks { count } => {
            if plan.targets.len() < *count as usize {
                Some(format!(
                    "it needs verified copies on at least {count} networks, and the backup targets {} ({})",
                    plan.targets.len(),
                    names(&plan.targets)
                ))
            } else if plan.min_copies < *count {
                Some(format!(
                    "it needs verified copies on at least {count} networks, and the backup would count as completed with {} (min_copies); raise min_copies to {count}",
                    plan.min_copies
                ))
            } else {
                None
            }
        }
        Demand::Jurisdictions { allowed } => {
            let mut outside: Vec<String> = Vec::new();
            for n in plan.targets.iter().chain(archives) {
                if !n.in_jurisdiction(allowed) && !outside.contains(&n.located()) {
                    outside.push(n.located());
                }
            }
            (!outside.is_empty()).then(|| {
                format!(
                    "it allows copies only in {}, and the backup would be held on {}",
                    allowed.join(", "),
                    outside.join(", ")
                )
            })
        }
        Demand::ImmutableCopy {
            governance_ok,
            archive,
            ..
        } => {
            let good = |n: &NetworkFacts| {
                n.immutable
                    .as_ref()
                    .is_some_and(|i| i.satisfies(*governance_ok))
            };
            if let Some(a) = archive {
                return match plan.configured.iter().find(|n| &n.name == a) {
                    Some(n) if good(n) => None,
                    Some(_) => Some(format!(
                        "its archive network {a} is not immutable storage (S3 Object Lock{}, a permanent network or can_delete = false)",
                        if *governance_ok { "" } else { " in compliance mode" }
                    )),
                    None => Some(format!("its archive network {a} is not configured")),
                };
            }
            let immutable = plan.targets.iter().filter(|n| good(n)).count();
            if let Some(k) = plan
                .shards_needed
                .filter(|k| immutable > 0 && immutable < *k as usize)
            {
                return Some(format!(
                    "it needs a copy on immutable storage, and the backup's packs are erasure-coded: {immutable} immutable target network(s) hold {immutable} shard(s), and it takes {k} to rebuild it from them alone"
                ));
            }
            let any = immutable > 0;
            (!any).then(|| {
                format!(
                    "it needs a copy on immutable storage ({}), and none of the target networks ({}) is",
                    if *governance_ok {
                        "S3 Object Lock, a permanent network or can_delete = false"
                    } else {
                        "S3 Object Lock in compliance mode, a permanent network or can_delete = false"
                    },
                    names(&plan.targets)
                )
            })
        }
        Demand::Encryption { algorithm } => (!algorithm.eq_ignore_ascii_case(CIPHER))
            .then(|| format!("it demands {algorithm}, and Cairn seals with {CIPHER}")),
        Demand::ErasurePossible {} => {
            if plan.repo_format < 4 {
                Some(format!(
                    "erasure needs a key per dataset (repository format 4), and this repository is format {}",
                    plan.repo_format
                ))
            } else if !plan.shreddable {
                Some("erasure needs a shreddable dataset, and this one is configured shreddable = false".into())
            } else {
                None
            }
        }
        Demand::MinRetention { .. }
        | Demand::KeyCustody { .. }
        | Demand::DrillWithin { .. }
        | Demand::AuditEvidence { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ComplianceConfig;
    use cairn_networks::NetworkConfig;

    fn net(v: serde_json::Value) -> NetworkFacts {
        NetworkFacts::of(&NetworkConfig::try_from(v).unwrap())
    }

    fn plan<'a>(targets: &[&'a NetworkFacts], min_copies: u32) -> Planned<'a> {
        Planned {
            targets: targets.to_vec(),
            min_copies,
            shards_needed: None,
            shreddable: true,
            repo_format: 4,
            configured: &[],
        }
    }

    #[test]
    fn erasure_coded_packs_need_k_immutable_targets_to_count_as_an_immutable_copy() {
        let fs = |n: &str| net(serde_json::json!({"name": n, "kind": "fs"}));
        let ar = |n: &str| {
            net(
                serde_json::json!({"name": n, "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w"}),
            )
        };
        let p: Profile = serde_json::from_value(serde_json::json!({"rules": [
            {"id": "imm", "control": "c", "kind": "immutable_copy"}]}))
        .unwrap();
        let profiles = vec![("p".to_string(), p)];
        let (a, b, c, x, y) = (fs("a"), fs("b"), fs("c"), ar("x"), ar("y"));
        fn coded<'a>(targets: &[&'a NetworkFacts]) -> Planned<'a> {
            Planned {
                shards_needed: Some(3),
                ..plan(targets, 3)
            }
        }
        // Whole copies: one permanent network is enough.
        check(&profiles, &plan(&[&a, &b, &c, &x, &y], 5)).unwrap();
        // Shards: two permanent networks hold two shards of the three needed.
        let e = check(&profiles, &coded(&[&a, &b, &c, &x, &y])).unwrap_err();
        assert!(
            e.why
                .contains("2 immutable target network(s) hold 2 shard(s), and it takes 3"),
            "{e}"
        );
        let z = ar("z");
        check(&profiles, &coded(&[&a, &b, &x, &y, &z])).unwrap();
    }

    #[test]
    fn an_archive_satisfies_immutability_without_being_a_target() {
        let a = net(serde_json::json!({"name": "a", "kind": "fs"}));
        let b = net(serde_json::json!({"name": "b", "kind": "fs"}));
        let ar = net(
            serde_json::json!({"name": "ar", "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w"}),
        );
        let p: Profile = serde_json::from_value(serde_json::json!({"rules": [
            {"id": "arch", "control": "c", "kind": "immutable_copy", "archive": "ar", "release_regular": true}]}))
        .unwrap();
        let profiles = vec![("p".to_string(), p)];
        let all = [a.clone(), b.clone(), ar];
        let planned = Planned {
            configured: &all,
            ..plan(&[&a, &b], 2)
        };
        check(&profiles, &planned).unwrap();
        let planned = Planned {
            configured: &all[..2],
            ..plan(&[&a, &b], 2)
        };
        let e = check(&profiles, &planned).unwrap_err();
        assert!(
            e.why.contains("archive network ar is not configured"),
            "{e}"
        );
        let not_immutable = [
            a.clone(),
            net(serde_json::json!({"name": "ar", "kind": "fs"})),
        ];
        let planned = Planned {
            configured: &not_immutable,
            ..plan(&[&a], 1)
        };
        let e = check(&profiles, &planned).unwrap_err();
        assert!(e.why.contains("is not immutable storage"), "{e}");
    }

    #[test]
    fn gdpr_refuses_a_network_outside_the_eu_by_name() {
        let eu = net(serde_json::json!({"name": "storj-eu", "kind": "fs", "jurisdiction": "eu"}));
        let us = net(serde_json::json!({"name": "storj-us", "kind": "fs", "jurisdiction": "us"}));
        let unknown = net(serde_json::json!({"name": "nas", "kind": "fs"}));
        let gdpr = ComplianceConfig::default().applying(&[], &["gdpr".into()]);
        check(&gdpr, &plan(&[&eu], 1)).unwrap();
        let e = check(&gdpr, &plan(&[&eu, &us], 2)).unwrap_err();
        assert_eq!(
            (e.profile.as_str(), e.rule.as_str()),
            ("gdpr", "gdpr-jurisdiction")
        );
        let msg = e.to_string();
        assert!(
            msg.contains("storj-us (us)") && !msg.contains("storj-eu") && msg.contains("Art. 44"),
            "{msg}"
        );
        let e = check(&gdpr, &plan(&[&unknown], 1)).unwrap_err();
        assert!(e.why.contains("nas (no jurisdiction set)"), "{e}");
        // Erasure needs dataset keys and a shreddable dataset.
        let e = check(
            &gdpr,
            &Planned {
                repo_format: 3,
                ..plan(&[&eu], 1)
            },
        )
        .unwrap_err();
        assert!(
            e.rule == "gdpr-erasure" && e.why.contains("format 3"),
            "{e}"
        );
        let e = check(
            &gdpr,
            &Planned {
                shreddable: false,
                ..plan(&[&eu], 1)
            },
        )
        .unwrap_err();
        assert!(e.why.contains("shreddable = false"), "{e}");
    }

    #[test]
    fn sox_needs_an_immutable_copy_and_two_verified_copies() {
        let a = net(serde_json::json!({"name": "a", "kind": "fs"}));
        let b = net(serde_json::json!({"name": "b", "kind": "fs"}));
        let vault = net(
            serde_json::json!({"name": "vault", "kind": "s3", "bucket": "x", "object_lock_days": 30}),
        );
        let gov = net(
            serde_json::json!({"name": "gov", "kind": "s3", "bucket": "x", "object_lock_days": 30, "object_lock_mode": "governance"}),
        );
        let sox = ComplianceConfig::default().applying(&["sox".into()], &[]);
        let e = check(&sox, &plan(&[&a, &b], 2)).unwrap_err();
        assert_eq!(e.rule, "sox-immutable");
        assert!(e.why.contains("a, b"), "{e}");
        // Governance mode can be bypassed: not enough for SOX.
        assert_eq!(
            check(&sox, &plan(&[&a, &gov], 2)).unwrap_err().rule,
            "sox-immutable"
        );
        let e = check(&sox, &plan(&[&vault], 1)).unwrap_err();
        assert!(
            e.rule == "sox-copies" && e.why.contains("targets 1 (vault)"),
            "{e}"
        );
        let e = check(&sox, &plan(&[&a, &vault], 1)).unwrap_err();
        assert!(e.why.contains("raise min_copies to 2"), "{e}");
        check(&sox, &plan(&[&a, &vault], 2)).unwrap();
        // HIPAA accepts governance mode.
        let hipaa = ComplianceConfig::default().applying(&[], &["hipaa".into()]);
        check(&hipaa, &plan(&[&a, &gov], 2)).unwrap();
    }

    #[test]
    fn archives_count_for_jurisdiction_and_release_conflicts_with_copies() {
        let eu = net(serde_json::json!({"name": "eu", "kind": "fs", "jurisdiction": "eu"}));
        let ar = net(
            serde_json::json!({"name": "ar", "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w"}),
        );
        let all = [eu.clone(), ar];
        let records: Profile = serde_json::from_value(serde_json::json!({"rules": [
            {"id": "arch", "control": "c", "kind": "immutable_copy", "archive": "ar", "release_regular": true}]}))
        .unwrap();
        let mut profiles = ComplianceConfig::default().applying(&[], &["gdpr".into()]);
        profiles.push(("records".into(), records.clone()));
        let planned = Planned {
            configured: &all,
            ..plan(&[&eu], 1)
        };
        let e = check(&profiles, &planned).unwrap_err();
        assert!(
            e.rule == "gdpr-jurisdiction" && e.why.contains("ar (no jurisdiction set)"),
            "{e}"
        );
        let mut profiles = ComplianceConfig::default().applying(&[], &["iso27001".into()]);
        profiles.push(("records".into(), records));
        let e = check(
            &profiles,
            &Planned {
                configured: &all,
                ..plan(&[&eu, &eu], 2)
            },
        )
        .unwrap_err();
        assert!(
            e.rule == "iso-backup" && e.why.contains("moves it to ar alone"),
            "{e}"
        );
    }

    #[test]
    fn no_profile_refuses_nothing() {
        let a = net(serde_json::json!({"name": "a", "kind": "fs"}));
        check(&[], &plan(&[&a], 1)).unwrap();
    }
}
