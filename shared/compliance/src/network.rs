//! What compliance rules need to know of a network, read off its
//! configuration: where it is and whether it can lose what it holds.

use cairn_networks::s3::config::LockMode;
use cairn_networks::{Kind, NetworkConfig};
use serde::Serialize;

/// Why a network cannot lose a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Immutability {
    /// S3 Object Lock: nobody can delete or overwrite before the lock ends
    /// (in governance mode, a user with s3:BypassGovernanceRetention can).
    ObjectLock { mode: String, days: u32 },
    /// A network that never deletes (Arweave).
    Permanent,
    /// `can_delete = false`: Cairn never deletes there (its credentials
    /// still could).
    NoDelete,
}

impl Immutability {
    /// Whether it satisfies an `immutable_copy` rule.
    pub fn satisfies(&self, governance_ok: bool) -> bool {
        match self {
            Immutability::ObjectLock { mode, .. } => mode == "compliance" || governance_ok,
            Immutability::Permanent | Immutability::NoDelete => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Immutability::ObjectLock { mode, days } => {
                format!("S3 Object Lock, {mode} mode, {days} days from each write")
            }
            Immutability::Permanent => "permanent storage (never deletes)".into(),
            Immutability::NoDelete => "can_delete = false".into(),
        }
    }
}

/// One network, as rules see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkFacts {
    pub name: String,
    pub kind: String,
    /// The `jurisdiction` key, lower-cased; unset is unknown, and no
    /// jurisdiction rule accepts it.
    pub jurisdiction: Option<String>,
    pub immutable: Option<Immutability>,
}

impl NetworkFacts {
    pub fn of(cfg: &NetworkConfig) -> NetworkFacts {
        let immutable = match &cfg.kind {
            Kind::Arweave(_) => Some(Immutability::Permanent),
            Kind::S3(s3) if s3.object_lock_days.is_some() => Some(Immutability::ObjectLock {
                mode: match s3.object_lock_mode {
                    Some(LockMode::Governance) => "governance".into(),
                    _ => "compliance".into(),
                },
                days: s3.object_lock_days.unwrap_or_default(),
            }),
            _ if cfg.common.can_delete == Some(false) => Some(Immutability::NoDelete),
            _ => None,
        };
        NetworkFacts {
            name: cfg.name.clone(),
            kind: cfg.kind.name().to_string(),
            jurisdiction: cfg
                .common
                .jurisdiction
                .as_ref()
                .map(|j| j.trim().to_lowercase()),
            immutable,
        }
    }

    /// Whether the network is in one of `allowed` (case-insensitive).
    pub fn in_jurisdiction(&self, allowed: &[String]) -> bool {
        self.jurisdiction
            .as_deref()
            .is_some_and(|j| allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(j)))
    }

    /// `name (eu)`, `name (no jurisdiction set)`.
    pub fn located(&self) -> String {
        match &self.jurisdiction {
            Some(j) => format!("{} ({j})", self.name),
            None => format!("{} (no jurisdiction set)", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(v: serde_json::Value) -> NetworkFacts {
        NetworkFacts::of(&NetworkConfig::try_from(v).unwrap())
    }

    #[test]
    fn immutability_comes_from_the_kind_and_its_settings() {
        let fs = net(
            serde_json::json!({"name": "a", "kind": "fs", "path": "/x", "jurisdiction": " EU "}),
        );
        assert_eq!(
            (fs.immutable, fs.jurisdiction.as_deref()),
            (None, Some("eu"))
        );
        let nd = net(serde_json::json!({"name": "a", "kind": "fs", "can_delete": false}));
        assert_eq!(nd.immutable, Some(Immutability::NoDelete));
        let ar = net(
            serde_json::json!({"name": "a", "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w"}),
        );
        assert_eq!(ar.immutable, Some(Immutability::Permanent));
        let lock = net(
            serde_json::json!({"name": "a", "kind": "s3", "bucket": "b", "object_lock_days": 30}),
        );
        let l = lock.immutable.unwrap();
        assert!(l.satisfies(false));
        let gov = net(
            serde_json::json!({"name": "a", "kind": "s3", "bucket": "b", "object_lock_days": 30, "object_lock_mode": "governance"}),
        );
        let g = gov.immutable.unwrap();
        assert!(!g.satisfies(false) && g.satisfies(true), "{g:?}");
        assert!(
            net(serde_json::json!({"name": "a", "kind": "s3", "bucket": "b"}))
                .immutable
                .is_none()
        );
    }

    #[test]
    fn an_unset_jurisdiction_is_in_none() {
        let fs = net(serde_json::json!({"name": "a", "kind": "fs"}));
        assert!(!fs.in_jurisdiction(&["eu".into()]));
        assert_eq!(fs.located(), "a (no jurisdiction set)");
        let eu = net(serde_json::json!({"name": "b", "kind": "fs", "jurisdiction": "eu"}));
        assert!(eu.in_jurisdiction(&["EU".into(), "ch".into()]));
        assert!(!eu.in_jurisdiction(&["us".into()]));
    }
}
