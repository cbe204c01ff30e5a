//! The local PostgreSQL, as the `postgres` user, through psql (as an
//! operator would query it).

use std::process::Command;

fn run_psql(db: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql must be installed")
}

/// Runs `sql` on the local PostgreSQL as the `postgres` user.
pub fn psql(db: &str, sql: &str) -> String {
    let out = run_psql(db, sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// [`psql`] for SQL that may be refused: (whether it succeeded, stderr).
pub fn try_psql(db: &str, sql: &str) -> (bool, String) {
    let out = run_psql(db, sql);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
