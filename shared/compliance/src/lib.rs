//! Compliance as rules with evidence. A profile (`sox`, `gdpr`, `hipaa`,
//! `iso27001`, or an operator's own) is a named set of rules, each citing
//! the control it serves; a backup's dataset or tags select the profiles
//! that apply to it.
//!
//! * [`profile`]: `[compliance]`, the rules and the built-in profiles.
//! * [`network`]: what rules need of a network (jurisdiction, immutability).
//! * [`request`]: whether a backup request can satisfy its profiles, judged
//!   before any byte moves (ingest refuses it otherwise).
//! * [`evaluate`]: every rule's verdict on one backup, with evidence (pure,
//!   with the time passed in), and the retention floor rules set.
//! * [`gather`]: the facts, read from the ledger.
//! * [`judge`]: the backups in scope judged, into a document.
//! * [`document`]: the findings with the cited entries' inclusion proofs,
//!   and their offline check.
//! * [`report`]: one profile's findings over a period, as a page for an
//!   auditor (HTML that prints well, and PDF through headless Chromium).
//!
//! No claim of certification: concrete rules, their evidence, their results.

pub mod document;
pub mod evaluate;
pub mod gather;
pub mod judge;
pub mod network;
pub mod profile;
pub mod report;
pub mod request;

pub use evaluate::{evaluate, floor_reason, kept_by_rule, retention_floor, Finding, Verdict};
pub use network::NetworkFacts;
pub use profile::{ComplianceConfig, Demand, Profile, Rule, Selector};
pub use request::{Planned, Refusal};
