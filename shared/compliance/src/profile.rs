//! `[compliance]`: profiles, each a named set of rules, and which backups
//! they apply to. Four profiles ship built in (`sox`, `gdpr`, `hipaa`,
//! `iso27001`); an operator's `[compliance.profiles.<name>]` adds one, or
//! replaces a built-in one of the same name whole (never merged into it,
//! so that what applies is exactly what the file says).
//!
//! A profile applies to a backup when the backup's dataset names it
//! (`[datasets.<name>] profiles = ["sox"]`) or the backup carries one of the
//! profile's tags (by default its own name: `cairn backup --tag sox`).
//!
//! The built-in rules cite the control each one serves. They are a
//! starting point an auditor can read, not a claim of certification.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The one cipher Cairn seals backup data with (every format).
pub const CIPHER: &str = "aes-256-gcm";

/// `[compliance]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplianceConfig {
    /// Operators' profiles (`[compliance.profiles.<name>]`), beside and
    /// over the built-in ones.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
}

/// A named set of rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the profile is for, in a sentence (shown in reports).
    #[serde(default)]
    pub description: String,
    /// Backup tags that select the profile (default: its own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    pub rules: Vec<Rule>,
}

/// One rule: what it demands, and the control it serves. (Unknown keys
/// are refused by [`Demand`], which receives every key but these two.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Short and unique within its profile (`sox-retention`).
    pub id: String,
    /// The control it serves, cited (`SOX §802 …`).
    pub control: String,
    #[serde(flatten)]
    pub demand: Demand,
}

/// What a rule demands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Demand {
    /// The backup is kept at least this many days after it was taken:
    /// retention refuses to forget it earlier, and a check fails for a
    /// backup that was forgotten earlier.
    MinRetention { days: u32 },
    /// Verified copies on at least this many networks.
    MinNetworks { count: u32 },
    /// A verified copy on a network that cannot lose it: S3 Object Lock in
    /// compliance mode (governance mode too when `governance_ok`), a
    /// permanent network (Arweave), or one with `can_delete = false`.
    ImmutableCopy {
        #[serde(default)]
        governance_ok: bool,
        /// The network backups are migrated to (`cairn compliance migrate`):
        /// copied, verified and locked there. A backup need not target it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archive: Option<String>,
        /// Once the archive holds a backup whole, it leaves its regular
        /// networks (its chunks there are freed by the collector).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        release_regular: bool,
    },
    /// Data sealed with this cipher before it left the machine.
    Encryption {
        #[serde(default = "cipher")]
        algorithm: String,
    },
    /// The master key split into threshold shares needing at least this
    /// many holders (`cairn key split`), and not rotated since.
    KeyCustody { min_threshold: u8 },
    /// Every network holding a copy is in one of these jurisdictions (the
    /// networks' `jurisdiction` key).
    Jurisdictions { allowed: Vec<String> },
    /// A restore drill of the dataset succeeded within this many days.
    DrillWithin { days: u32 },
    /// Every ledger entry of the backup is in a signed checkpoint
    /// (cosigned by a witness when `witnessed`).
    AuditEvidence {
        #[serde(default)]
        witnessed: bool,
    },
    /// The backup can be erased on request (GDPR): its data key is wrapped
    /// to its dataset's own key, the dataset is shreddable, and no legal
    /// hold on any of its backups blocks a shred.
    ErasurePossible {},
}

fn cipher() -> String {
    CIPHER.to_string()
}

impl Demand {
    /// The kind, as written in `kind = "…"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Demand::MinRetention { .. } => "min_retention",
            Demand::MinNetworks { .. } => "min_networks",
            Demand::ImmutableCopy { .. } => "immutable_copy",
            Demand::Encryption { .. } => "encryption",
            Demand::KeyCustody { .. } => "key_custody",
            Demand::Jurisdictions { .. } => "jurisdictions",
            Demand::DrillWithin { .. } => "drill_within",
            Demand::AuditEvidence { .. } => "audit_evidence",
            Demand::ErasurePossible {} => "erasure_possible",
        }
    }

    /// The demand in words, for reports.
    pub fn describe(&self) -> String {
        match self {
            Demand::MinRetention { days } => format!("kept at least {days} days"),
            Demand::MinNetworks { count } => format!("verified copies on at least {count} networks"),
            Demand::ImmutableCopy {
                governance_ok,
                archive,
                release_regular,
            } => format!(
                "a verified copy on immutable storage (Object Lock in compliance mode{}, a permanent network, or can_delete = false){}",
                if *governance_ok { " or governance mode" } else { "" },
                match (archive, release_regular) {
                    (Some(a), true) => format!(", migrated to {a}, which then holds it alone"),
                    (Some(a), false) => format!(", migrated to {a}"),
                    (None, _) => String::new(),
                }
            ),
            Demand::Encryption { algorithm } => format!("sealed with {algorithm} before leaving the machine"),
            Demand::KeyCustody { min_threshold } => {
                format!("master key split into shares, at least {min_threshold} needed to open it")
            }
            Demand::Jurisdictions { allowed } => {
                format!("copies only in jurisdictions {}", allowed.join(", "))
            }
            Demand::DrillWithin { days } => {
                format!("a restore drill of the dataset succeeded within {days} days")
            }
            Demand::AuditEvidence { witnessed } => format!(
                "every ledger entry in a signed{} checkpoint",
                if *witnessed { " and witnessed" } else { "" }
            ),
            Demand::ErasurePossible {} => {
                "erasable on request (dataset key, shreddable, no legal hold in the way)".into()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("compliance profile {profile:?}: {problem}")]
    Bad { profile: String, problem: String },
    #[error("unknown compliance profile {name:?} (known: {known})")]
    Unknown { name: String, known: String },
}

impl Profile {
    /// The tags that select the profile.
    pub fn tags<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        match &self.tags {
            Some(t) => t.iter().map(String::as_str).collect(),
            None => vec![name],
        }
    }

    fn check(&self, name: &str) -> Result<(), ProfileError> {
        let bad = |problem: String| ProfileError::Bad {
            profile: name.to_string(),
            problem,
        };
        if self.rules.is_empty() {
            return Err(bad("has no rules".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            if r.id.trim().is_empty() {
                return Err(bad("a rule without an id".into()));
            }
            if !seen.insert(r.id.as_str()) {
                return Err(bad(format!("rule {:?} is given twice", r.id)));
            }
            let zero = match &r.demand {
                Demand::MinRetention { days } | Demand::DrillWithin { days } => *days == 0,
                Demand::MinNetworks { count } => *count == 0,
                Demand::KeyCustody { min_threshold } => *min_threshold < 2,
                Demand::Jurisdictions { allowed } => allowed.is_empty(),
                _ => false,
            };
            if let Demand::ImmutableCopy {
                archive: None,
                release_regular: true,
                ..
            } = &r.demand
            {
                return Err(bad(format!(
                    "rule {:?}: release_regular needs an archive network to release to",
                    r.id
                )));
            }
            if zero {
                return Err(bad(format!(
                    "rule {:?} ({}) demands nothing: give a number of at least 1 (2 for min_threshold) or a non-empty list",
                    r.id,
                    r.demand.kind()
                )));
            }
        }
        let released = self.rules.iter().any(|r| {
            matches!(
                r.demand,
                Demand::ImmutableCopy {
                    release_regular: true,
                    ..
                }
            )
        });
        if let Some(r) = self
            .rules
            .iter()
            .find(|r| matches!(r.demand, Demand::MinNetworks { count } if count > 1))
        {
            if released {
                return Err(bad(format!(
                    "rule {:?} wants copies on several networks, and release_regular leaves the archive alone with the backup",
                    r.id
                )));
            }
        }
        Ok(())
    }

    /// The archive networks its rules migrate backups to, each with
    /// whether the backup then leaves its regular networks.
    pub fn archives(&self) -> Vec<(String, bool)> {
        self.rules
            .iter()
            .filter_map(|r| match &r.demand {
                Demand::ImmutableCopy {
                    archive: Some(a),
                    release_regular,
                    ..
                } => Some((a.clone(), *release_regular)),
                _ => None,
            })
            .collect()
    }
}

impl ComplianceConfig {
    /// A profile by name: the operator's, else the built-in one.
    pub fn profile(&self, name: &str) -> Option<Profile> {
        self.profiles
            .get(name)
            .cloned()
            .or_else(|| builtin().remove(name))
    }

    /// Every profile by name, operators' over built-in.
    pub fn all(&self) -> BTreeMap<String, Profile> {
        let mut all = builtin();
        all.extend(self.profiles.clone());
        all
    }

    /// A profile by name, or an error listing the known ones.
    pub fn named(&self, name: &str) -> Result<Profile, ProfileError> {
        self.profile(name).ok_or_else(|| ProfileError::Unknown {
            name: name.to_string(),
            known: self.all().keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The profiles that apply to a backup of a dataset naming
    /// `dataset_profiles`, carrying `tags`; sorted by name.
    pub fn applying(&self, dataset_profiles: &[String], tags: &[String]) -> Vec<(String, Profile)> {
        self.all()
            .into_iter()
            .filter(|(name, p)| {
                dataset_profiles.contains(name)
                    || p.tags(name).iter().any(|t| tags.iter().any(|b| b == t))
            })
            .collect()
    }

    /// Refuses a profile without rules, a rule given twice or demanding
    /// nothing, and `names` (datasets' `profiles`) that name no profile.
    pub fn check<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), ProfileError> {
        for (name, p) in &self.profiles {
            p.check(name)?;
        }
        for n in names {
            self.named(n)?;
        }
        Ok(())
    }
}

/// Which profiles apply to which backups: the profiles, and the ones each
/// dataset names (`[datasets.<name>] profiles`). What the stages hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub config: ComplianceConfig,
    pub datasets: BTreeMap<String, Vec<String>>,
}

impl Selector {
    /// The archive networks the profiles of a backup of `dataset` carrying
    /// `tags` migrate it to, each with whether it then leaves its regular
    /// networks; each archive once (leaving if any rule says so).
    pub fn archives(&self, dataset: &str, tags: &[String]) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        for (a, release) in self
            .applying(dataset, tags)
            .iter()
            .flat_map(|(_, p)| p.archives())
        {
            match out.iter_mut().find(|(n, _)| *n == a) {
                Some(e) => e.1 |= release,
                None => out.push((a, release)),
            }
        }
        out
    }

    /// The profiles a backup of `dataset` carrying `tags` is held to.
    pub fn applying(&self, dataset: &str, tags: &[String]) -> Vec<(String, Profile)> {
        let named = self.datasets.get(dataset).map(Vec::as_slice).unwrap_or(&[]);
        self.config.applying(named, tags)
    }
}

fn rule(id: &str, control: &str, demand: Demand) -> Rule {
    Rule {
        id: id.into(),
        control: control.into(),
        demand,
    }
}

/// The built-in profiles.
pub fn builtin() -> BTreeMap<String, Profile> {
    use Demand::*;
    let encryption = || Encryption {
        algorithm: CIPHER.into(),
    };
    let mut m = BTreeMap::new();
    m.insert(
        "sox".to_string(),
        Profile {
            description: "Sarbanes-Oxley: financial records and audit evidence kept seven years, unalterable, restorable".into(),
            tags: None,
            rules: vec![
                rule("sox-retention", "SOX §802 (18 U.S.C. §1520) and SEC Regulation S-X Rule 2-06: audit records retained seven years", MinRetention { days: 2555 }),
                rule("sox-immutable", "SOX §802 (18 U.S.C. §1519): records protected from alteration and destruction", ImmutableCopy { governance_ok: false, archive: None, release_regular: false }),
                rule("sox-copies", "SOX §404 IT general controls: backup of financial data", MinNetworks { count: 2 }),
                rule("sox-drill", "SOX §404 IT general controls: backups are restored in tests", DrillWithin { days: 90 }),
                rule("sox-encryption", "SOX §404 IT general controls: access to financial data restricted", encryption()),
                rule("sox-audit-trail", "SOX §404: evidence that the control operated, in a tamper-evident log", AuditEvidence { witnessed: false }),
            ],
        },
    );
    m.insert(
        "gdpr".to_string(),
        Profile {
            description:
                "GDPR: personal data kept in the EU, encrypted, restorable, and erasable on request"
                    .into(),
            tags: None,
            rules: vec![
                rule(
                    "gdpr-jurisdiction",
                    "GDPR Art. 44-46: no transfer outside the EU without safeguards",
                    Jurisdictions {
                        allowed: vec!["eu".into()],
                    },
                ),
                rule(
                    "gdpr-erasure",
                    "GDPR Art. 17: right to erasure",
                    ErasurePossible {},
                ),
                rule(
                    "gdpr-encryption",
                    "GDPR Art. 32(1)(a): encryption of personal data",
                    encryption(),
                ),
                rule(
                    "gdpr-restore",
                    "GDPR Art. 32(1)(c)-(d): availability restored in time, and regularly tested",
                    DrillWithin { days: 180 },
                ),
                rule(
                    "gdpr-accountability",
                    "GDPR Art. 5(2): accountability, demonstrated by records",
                    AuditEvidence { witnessed: false },
                ),
            ],
        },
    );
    m.insert(
        "hipaa".to_string(),
        Profile {
            description: "HIPAA Security Rule: ePHI backed up as exact copies, encrypted, tested, audited, documentation kept six years".into(),
            tags: None,
            rules: vec![
                rule("hipaa-retention", "45 CFR §164.316(b)(2)(i): documentation retained six years", MinRetention { days: 2190 }),
                rule("hipaa-backup", "45 CFR §164.308(a)(7)(ii)(A): data backup plan, retrievable exact copies", MinNetworks { count: 2 }),
                rule("hipaa-integrity", "45 CFR §164.312(c)(1): ePHI protected from improper alteration or destruction", ImmutableCopy { governance_ok: true, archive: None, release_regular: false }),
                rule("hipaa-testing", "45 CFR §164.308(a)(7)(ii)(D): contingency plans tested", DrillWithin { days: 365 }),
                rule("hipaa-encryption", "45 CFR §164.312(a)(2)(iv) and (e)(2)(ii): encryption of ePHI", encryption()),
                rule("hipaa-audit", "45 CFR §164.312(b): audit controls", AuditEvidence { witnessed: false }),
            ],
        },
    );
    m.insert(
        "iso27001".to_string(),
        Profile {
            description: "ISO/IEC 27001:2022 Annex A: backups copied, tested, encrypted with managed keys, logged".into(),
            tags: None,
            rules: vec![
                rule("iso-backup", "ISO/IEC 27001:2022 A.8.13: information backup", MinNetworks { count: 2 }),
                rule("iso-backup-tested", "ISO/IEC 27001:2022 A.8.13: backups tested", DrillWithin { days: 180 }),
                rule("iso-cryptography", "ISO/IEC 27001:2022 A.8.24: use of cryptography", encryption()),
                rule("iso-key-management", "ISO/IEC 27001:2022 A.8.24: key management", KeyCustody { min_threshold: 2 }),
                rule("iso-records", "ISO/IEC 27001:2022 A.5.33: protection of records", ImmutableCopy { governance_ok: true, archive: None, release_regular: false }),
                rule("iso-logging", "ISO/IEC 27001:2022 A.8.15: logging", AuditEvidence { witnessed: false }),
            ],
        },
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_are_sound_and_cite_a_control_per_rule() {
        let c = ComplianceConfig::default();
        for (name, p) in builtin() {
            p.check(&name).unwrap();
            assert!(!p.description.is_empty(), "{name}");
            for r in &p.rules {
                assert!(r.control.len() > 10, "{name}/{}", r.id);
            }
        }
        assert_eq!(
            c.all().keys().collect::<Vec<_>>(),
            ["gdpr", "hipaa", "iso27001", "sox"]
        );
    }

    #[test]
    fn a_dataset_or_a_tag_selects_profiles() {
        let c = ComplianceConfig::default();
        let names = |v: Vec<(String, Profile)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(c.applying(&[], &["nightly".into()])),
            Vec::<String>::new()
        );
        assert_eq!(names(c.applying(&[], &["sox".into()])), ["sox"]);
        assert_eq!(
            names(c.applying(&["gdpr".into()], &["sox".into()])),
            ["gdpr", "sox"]
        );
    }

    #[test]
    fn an_operators_profile_replaces_a_built_in_one_whole() {
        let c: ComplianceConfig = serde_json::from_value(serde_json::json!({
            "profiles": {
                "sox": {"tags": ["finance"], "rules": [
                    {"id": "two", "control": "internal policy 4.2", "kind": "min_networks", "count": 3}
                ]},
                "eu-only": {"rules": [
                    {"id": "eu", "control": "works council agreement", "kind": "jurisdictions", "allowed": ["eu", "ch"]}
                ]}
            }
        }))
        .unwrap();
        let sox = c.profile("sox").unwrap();
        assert_eq!(sox.rules.len(), 1);
        assert_eq!(sox.rules[0].demand, Demand::MinNetworks { count: 3 });
        let names = |v: Vec<(String, Profile)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        // Its own tags now select it, not its name.
        assert_eq!(
            names(c.applying(&[], &["sox".into()])),
            Vec::<String>::new()
        );
        assert_eq!(names(c.applying(&[], &["finance".into()])), ["sox"]);
        assert_eq!(names(c.applying(&[], &["eu-only".into()])), ["eu-only"]);
        c.check(&["eu-only".to_string()]).unwrap();
    }

    #[test]
    fn bad_profiles_are_refused_by_name() {
        let parse = |v: serde_json::Value| serde_json::from_value::<ComplianceConfig>(v);
        let err = parse(serde_json::json!({"profiles": {"x": {"rules": [
            {"id": "r", "control": "c", "kind": "min_retention", "dayz": 3}]}}}))
        .unwrap_err()
        .to_string();
        assert!(err.contains("dayz"), "{err}");
        let err = parse(serde_json::json!({"profiles": {"x": {"rules": [
            {"id": "r", "control": "c", "kind": "carbon_neutral"}]}}}))
        .unwrap_err()
        .to_string();
        assert!(err.contains("carbon_neutral"), "{err}");
        let c = parse(serde_json::json!({"profiles": {"x": {"rules": [
            {"id": "r", "control": "c", "kind": "min_networks", "count": 0}]}}}))
        .unwrap();
        let err = c.check([]).unwrap_err().to_string();
        assert!(
            err.contains("\"x\"") && err.contains("\"r\"") && err.contains("demands nothing"),
            "{err}"
        );
        let c = parse(serde_json::json!({"profiles": {"x": {"rules": [
            {"id": "r", "control": "c", "kind": "drill_within", "days": 3},
            {"id": "r", "control": "c", "kind": "drill_within", "days": 4}]}}}))
        .unwrap();
        let err = c.check([]).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let err = ComplianceConfig::default()
            .check([&"soxx".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"soxx\"") && err.contains("gdpr, hipaa, iso27001, sox"),
            "{err}"
        );
    }
}
