//! Test harness, split by what it starts: [`env`] (one isolated Cairn
//! deployment: its own nats-server, PostgreSQL database, data directory
//! and config, and the real `cairn` binary run as a user would), [`nats`],
//! [`postgres`], [`servers`] (each storage server), [`process`] and
//! [`fixtures`]. Everything is re-exported here, so a test file needs one
//! `use cairn_tests::*`.
//!
//! Build the binary first (`cargo build -p cairn`; `scripts/test.sh` does).

pub mod env;
pub mod fixtures;
pub mod hosts;
pub mod ledger;
pub mod metrics;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod servers;
pub mod tls;

pub use env::*;
pub use fixtures::*;
pub use ledger::*;
pub use metrics::*;
pub use nats::*;
pub use postgres::*;
pub use process::*;
pub use proxy::*;
pub use servers::arweave::*;
pub use servers::garage::*;
pub use servers::ipfs::*;
pub use servers::moto::*;
pub use servers::pinning::*;
pub use servers::s3::*;
