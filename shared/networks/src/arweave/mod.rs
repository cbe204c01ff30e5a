//! Arweave, the permanent network (work in progress: transactions are built
//! and signed here, checked against the reference client's vectors; the
//! network adapter on top of them comes next). Permanent means no delete,
//! ever: retention and crypto-shredding rely on knowing that.

pub mod tx;
