//! What the CLI prints: one JSON object per command with `--json`, short
//! human lines otherwise. Everything goes through [`out!`] and [`err!`]:
//! standard output closed early (`cairn audit log | head -1`) ends the
//! command quietly instead of panicking, as `restic … | head` does.

use std::io::Write;

/// Writes a line to standard output; a closed pipe is an `io::Error` that
/// `main` turns into a quiet exit.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}

/// Writes a line to standard error, ignoring a closed one.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::note(format_args!($($arg)*))
    };
}

/// Standard output was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("standard output is closed")]
pub struct Closed;

fn closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(e.kind(), Closed)
    } else {
        e
    }
}

pub fn line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stdout(), "{args}").map_err(closed)
}

pub fn note(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// Text without a newline (a signed note carries its own).
pub fn raw(text: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(closed)
}

/// One JSON object on one line.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    line(format_args!("{}", serde_json::to_string(v)?))?;
    Ok(())
}

/// Whether an error is standard output having been closed (by `head`).
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<Closed>())
    })
}

/// Whether a restore to standard output stopped because its reader went
/// away (nothing else in that restore writes to a pipe).
pub fn is_broken_pipe(e: &cairn_repo::RepoError) -> bool {
    matches!(e, cairn_repo::RepoError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A progress bar on standard error when it is a terminal (standard
/// output may carry data), or none.
pub fn progress_bar(show: bool, template: &str, message: String) -> Option<indicatif::ProgressBar> {
    (show && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(message);
        b
    })
}

/// An age in seconds, coarsely: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}
