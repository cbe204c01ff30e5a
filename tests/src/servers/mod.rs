//! The real storage servers the tests talk to, one file each; each starts
//! on a free port in the test's directory and stops when dropped.
//! `scripts/test.sh` installs them.

pub mod arweave;
pub mod garage;
pub mod ipfs;
pub mod moto;
pub mod pinning;
pub mod s3;
