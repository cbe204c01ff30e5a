//! `cairn compliance report`: one profile's findings over a period, for an
//! auditor, as a self-contained HTML page that prints well (A4, no scripts,
//! no outside resources), optionally printed to PDF by headless Chromium.
//! The evidence bundle beside it is the [`Document`] the page was made
//! from: every cited ledger entry with its inclusion proof, checked offline
//! by `cairn audit check-proof`.

use crate::document::{BackupReport, Document};
use crate::evaluate::{Cite, Verdict};
use crate::profile::Profile;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What the page says around the findings.
pub struct Frame<'a> {
    pub profile_name: &'a str,
    pub profile: &'a Profile,
    /// The period's first and last day (`YYYY-MM-DD`), as asked.
    pub from: &'a str,
    pub to: &'a str,
    /// The evidence bundle's file name, as the page refers to it.
    pub bundle: &'a str,
    pub repo_id: &'a str,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn badge(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "<span class=\"badge pass\">pass</span>",
        Verdict::Fail => "<span class=\"badge fail\">fail</span>",
        Verdict::NotApplicable => "<span class=\"badge na\">n/a</span>",
    }
}

const STYLE: &str = r#"
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1b1f24; margin: 0 auto; max-width: 60rem; padding: 1.5rem; }
h1 { font-size: 20pt; margin: 0 0 .2rem; }
h2 { font-size: 13pt; margin: 1.6rem 0 .5rem; border-bottom: 2px solid #1b1f24; padding-bottom: .15rem; }
h3 { font-size: 11pt; margin: 1.1rem 0 .3rem; }
.lede { color: #444; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
th, td { border: 1px solid #c9ced6; padding: .28rem .45rem; vertical-align: top; text-align: left; }
th { background: #eef1f5; font-weight: 600; }
tr { break-inside: avoid; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 9pt; }
.meta th { width: 11rem; }
.verdict { display: flex; gap: .8rem; margin: .6rem 0 1rem; }
.box { flex: 1; border: 1px solid #c9ced6; border-radius: 4px; padding: .5rem .7rem; }
.box .n { font-size: 18pt; font-weight: 700; display: block; }
.box.pass .n { color: #12703a; } .box.fail .n { color: #b3261e; } .box.na .n { color: #555; }
.overall { font-size: 12pt; font-weight: 600; padding: .5rem .7rem; border-radius: 4px; }
.overall.ok { background: #e3f4e8; color: #12703a; } .overall.bad { background: #fbe7e6; color: #b3261e; }
.badge { display: inline-block; min-width: 2.6rem; text-align: center; border-radius: 3px; padding: 0 .3rem; font-weight: 700; font-size: 8.5pt; text-transform: uppercase; }
.badge.pass { background: #12703a; color: #fff; } .badge.fail { background: #b3261e; color: #fff; } .badge.na { background: #d5d9df; color: #333; }
.control { color: #555; font-size: 9pt; }
pre { background: #f6f8fa; border: 1px solid #c9ced6; padding: .5rem; white-space: pre-wrap; word-break: break-all; font-size: 8.5pt; }
footer { margin-top: 1.5rem; color: #555; font-size: 9pt; border-top: 1px solid #c9ced6; padding-top: .4rem; }
"#;

/// The page.
pub fn html(doc: &Document, frame: &Frame) -> String {
    let mut h = String::new();
    let t = &doc.tally;
    let title = format!("Compliance report: {}", frame.profile_name);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<h1>{}</h1>\n<p class=\"lede\">{}</p>",
        esc(&title),
        esc(&frame.profile.description)
    );
    let checkpoint = doc
        .checkpoint
        .as_deref()
        .and_then(|c| {
            let (size, _) = cairn_tlog::checkpoint::unverified(c.as_bytes()).ok()?;
            // A checkpoint's first line is the log's origin.
            Some(format!(
                "{}, size {size}",
                c.lines().next().unwrap_or_default()
            ))
        })
        .unwrap_or_else(|| "none signed yet".into());
    let _ = writeln!(
        h,
        "<table class=\"meta\"><tr><th>Period (backups taken)</th><td>{} to {}</td></tr>\
         <tr><th>Rules judged as at</th><td>{}</td></tr>\
         <tr><th>Generated</th><td>{}</td></tr>\
         <tr><th>Repository</th><td class=\"mono\">{}</td></tr>\
         <tr><th>Ledger checkpoint</th><td class=\"mono\">{}</td></tr>\
         <tr><th>Evidence bundle</th><td class=\"mono\">{}</td></tr></table>",
        esc(frame.from),
        esc(frame.to),
        esc(&doc.as_of),
        esc(&doc.checked_at),
        esc(frame.repo_id),
        esc(&checkpoint),
        esc(frame.bundle)
    );
    h.push_str("<h2>Summary</h2>\n");
    let overall = if t.backups == 0 {
        (
            "bad",
            "No backup in the period is held to this profile.".to_string(),
        )
    } else if t.failed == 0 {
        (
            "ok",
            format!(
                "No finding failed over the {} backup(s) in the period{}.",
                t.backups,
                if t.not_applicable > 0 {
                    " (those not applicable are of backups that failed, were forgotten or still run: nothing of them to judge)"
                } else {
                    ""
                }
            ),
        )
    } else {
        (
            "bad",
            format!(
                "{} finding(s) failed over {} backup(s): see the rules and backups below.",
                t.failed, t.backups
            ),
        )
    };
    let _ = writeln!(
        h,
        "<div class=\"overall {}\">{}</div>\n<div class=\"verdict\">\
         <div class=\"box\"><span class=\"n\">{}</span>backups</div>\
         <div class=\"box pass\"><span class=\"n\">{}</span>findings passed</div>\
         <div class=\"box fail\"><span class=\"n\">{}</span>findings failed</div>\
         <div class=\"box na\"><span class=\"n\">{}</span>not applicable</div></div>",
        overall.0,
        esc(&overall.1),
        t.backups,
        t.passed,
        t.failed,
        t.not_applicable
    );

    h.push_str("<h2>Rules</h2>\n<table><tr><th>Rule</th><th>Demand and control</th><th>Pass</th><th>Fail</th><th>N/A</th></tr>\n");
    let mut counts: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for f in doc.backups.iter().flat_map(|b| &b.findings) {
        let c = counts.entry(f.rule.as_str()).or_default();
        c[match f.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::NotApplicable => 2,
        }] += 1;
    }
    for r in &frame.profile.rules {
        let c = counts.get(r.id.as_str()).copied().unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}<br><span class=\"control\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.id),
            esc(&r.demand.describe()),
            esc(&r.control),
            c[0],
            c[1],
            c[2]
        );
    }
    h.push_str("</table>\n<h2>Backups</h2>\n");
    if doc.backups.is_empty() {
        h.push_str("<p>None.</p>\n");
    }
    for b in &doc.backups {
        backup(&mut h, b);
    }

    h.push_str("<h2>Evidence</h2>\n");
    let _ = writeln!(
        h,
        "<p>Every ledger entry cited above is in the evidence bundle <code>{}</code>, as its exact bytes with an RFC 6962 inclusion proof against the signed checkpoint below. Check it offline with the log's public key: <code>cairn audit check-proof {} --key LOG.pub</code>.{}</p>",
        esc(frame.bundle),
        esc(frame.bundle),
        if doc.unproven.is_empty() {
            String::new()
        } else {
            format!(
                " {} cited entries are newer than the checkpoint and carry no proof yet.",
                doc.unproven.len()
            )
        }
    );
    if let Some(c) = &doc.checkpoint {
        let _ = writeln!(h, "<pre>{}</pre>", esc(c));
    }
    h.push_str(
        "<table><tr><th>Entry</th><th>Kind</th><th>Leaf hash (SHA-256 of 0x00 ‖ entry)</th></tr>\n",
    );
    for e in &doc.entries {
        let leaf = base64_leaf(&e.entry);
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td class=\"mono\">{}</td></tr>",
            e.seq,
            esc(&e.kind),
            esc(&leaf)
        );
    }
    h.push_str("</table>\n<footer>These are the results of the rules above, judged by Cairn from its ledger and configuration. They are evidence for an auditor, not a certification.</footer>\n</body></html>\n");
    h
}

fn base64_leaf(entry: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(entry) {
        Ok(bytes) => hex(&cairn_tlog::leaf_hash(&bytes).0),
        Err(_) => "(not base64)".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn backup(h: &mut String, b: &BackupReport) {
    let _ = writeln!(
        h,
        "<h3><code>{}</code></h3><p class=\"control\">dataset <b>{}</b>, taken {}, {}{}</p>",
        esc(&b.backup_id),
        esc(&b.dataset),
        esc(&b.requested_at),
        esc(&b.status),
        if b.tags.is_empty() {
            String::new()
        } else {
            format!(", tags {}", esc(&b.tags.join(", ")))
        }
    );
    if b.unjudged() {
        let why = if b.reasons.is_empty() {
            b.findings[0].detail.clone()
        } else {
            format!("{}: {}", b.status, b.reasons.join("; "))
        };
        let _ = writeln!(
            h,
            "<table><tr><td>{}</td><td>No rule applies to what is left of it: {}</td></tr></table>",
            badge(Verdict::NotApplicable),
            esc(&why)
        );
        return;
    }
    h.push_str("<table><tr><th></th><th>Rule</th><th>Finding</th><th>Evidence</th></tr>\n");
    for f in &b.findings {
        let evidence: Vec<String> = f
            .evidence
            .iter()
            .map(|c| match c {
                Cite::Entry { seq, kind } => format!("entry {seq} <code>{}</code>", esc(kind)),
                Cite::Network { network, fact } => {
                    format!("network <b>{}</b>: {}", esc(network), esc(fact))
                }
                Cite::Checkpoint { size, cosigned } => format!(
                    "checkpoint of size {size}{}",
                    if *cosigned { ", cosigned" } else { "" }
                ),
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            badge(f.verdict),
            esc(&f.rule),
            esc(&f.detail),
            evidence.join("<br>")
        );
    }
    h.push_str("</table>\n");
}

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("no Chromium to print the PDF with (install Debian's `chromium`, or set CAIRN_CHROMIUM); the HTML report prints well from any browser")]
    NoBrowser,
    #[error("{browser}: {detail}")]
    Failed { browser: String, detail: String },
}

/// Headless Chromium: `CAIRN_CHROMIUM`, else the first of the usual names
/// on the path.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// Prints the page at `html` to `pdf` (A4, as its `@page` rule says).
pub fn print_pdf(html: &Path, pdf: &Path) -> Result<(), PrintError> {
    let browser = chromium().ok_or(PrintError::NoBrowser)?;
    let failed = |detail: String| PrintError::Failed {
        browser: browser.display().to_string(),
        detail,
    };
    let html =
        std::fs::canonicalize(html).map_err(|e| failed(format!("{}: {e}", html.display())))?;
    // A profile of its own, removed after: nothing of the user's browser is
    // read or changed.
    let profile = std::env::temp_dir().join(format!(
        "cairn-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let out = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output();
    let _ = std::fs::remove_dir_all(&profile);
    let out = out.map_err(|e| failed(e.to_string()))?;
    let written = std::fs::metadata(pdf).map(|m| m.len() > 0).unwrap_or(false);
    if !out.status.success() || !written {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(failed(format!(
            "printing to {} failed ({}): {}",
            pdf.display(),
            out.status,
            err.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Tally;
    use crate::evaluate::Finding;
    use crate::profile::builtin;

    #[test]
    fn the_page_escapes_what_it_shows_and_counts_per_rule() {
        let sox = builtin().remove("sox").unwrap();
        let finding = |rule: &str, verdict| Finding {
            profile: "sox".into(),
            rule: rule.into(),
            control: "c".into(),
            kind: "min_networks".into(),
            demand: "d".into(),
            verdict,
            detail: "<script>alert(1)</script>".into(),
            evidence: vec![Cite::Entry {
                seq: 3,
                kind: "backup.completed".into(),
            }],
        };
        let backups = vec![BackupReport {
            backup_id: "b1".into(),
            dataset: "books & co".into(),
            tags: vec![],
            status: "completed".into(),
            requested_at: "2026-12-01T00:00:00Z".into(),
            profiles: vec!["sox".into()],
            reasons: vec![],
            findings: vec![
                finding("sox-copies", Verdict::Pass),
                finding("sox-drill", Verdict::Fail),
            ],
        }];
        let doc = Document {
            format: crate::document::FORMAT.into(),
            checked_at: "2026-12-06T00:00:00Z".into(),
            as_of: "2026-12-06T00:00:00Z".into(),
            tally: Tally::of(&backups),
            backups,
            checkpoint: None,
            entries: vec![],
            unproven: vec![3],
        };
        let page = html(
            &doc,
            &Frame {
                profile_name: "sox",
                profile: &sox,
                from: "2026-12-01",
                to: "2026-12-31",
                bundle: "r.evidence.json",
                repo_id: "abc",
            },
        );
        assert!(!page.contains("<script>"), "escaped");
        assert!(page.contains("&lt;script&gt;") && page.contains("books &amp; co"));
        assert!(page.contains("1 finding(s) failed over 1 backup(s)"));
        assert!(
            page.contains("<code>sox-drill</code></td><td>a restore drill"),
            "{page}"
        );
        assert!(page.contains("1 cited entries are newer than the checkpoint"));
    }
}
