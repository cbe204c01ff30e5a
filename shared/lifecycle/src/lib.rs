//! A dataset's lifecycle, decided without a broker or a network: which
//! backups a retention policy keeps and why ([`policy`]), which archived
//! PostgreSQL WAL the kept base backups need ([`wal`]), and when a
//! schedule fires ([`schedule`]), and what the networks will hold over the
//! next months ([`projection`]). The retention service carries these
//! decisions out; the CLI prints them.
//!
//! Everything here is a pure function of what it is given, including the
//! time, so the tests pin the clock instead of sleeping.

pub mod policy;
pub mod projection;
pub mod schedule;
pub mod span;
pub mod wal;

pub use policy::{decide, Candidate, Decision, Policy, PolicyError, Status};
pub use schedule::{cadence, due, Checked, Schedule, ScheduleError, ScheduleExt};
pub use span::Span;
pub use wal::{decide_wal, Base};
