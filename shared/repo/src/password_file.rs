//! A database's password file: its first line, which must not be empty.
//! Read on the host that uses it (the ingest worker's, the restoring
//! client's) and handed to the client tool alone; never logged, never in
//! an event or the ledger.

use std::path::Path;

pub fn read(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(format!("password file {} is empty", path.display()));
    }
    Ok(password)
}
