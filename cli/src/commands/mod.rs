//! One file per command (or command group): each defines its arguments
//! and prints what a library function returns.

pub mod audit;
pub mod backup;
pub mod compliance;
pub mod console;
pub mod cost;
pub mod drill;
pub mod forget;
pub mod gc;
pub mod health;
pub mod hold;
pub mod init;
pub mod key;
pub mod list;
pub mod ls;
pub mod nats;
pub mod recover;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod serve;
pub mod setup;
pub mod shred;
pub mod wal;
