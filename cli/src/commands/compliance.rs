//! `cairn compliance check | report | profiles`: every rule of the profiles
//! that apply to a backup (its dataset's, its tags'), pass or fail, with the
//! evidence; the `--json` document (and a report's evidence bundle) carries
//! the cited ledger entries with inclusion proofs, checked offline by
//! `cairn audit check-proof`.

use crate::{context, exit, out, output};
use anyhow::{bail, Context};
use cairn_compliance::document::Document;
use cairn_compliance::judge::{Judge, Scope};
use cairn_compliance::{evaluate::Cite, Verdict};
use cairn_config::Config;
use cairn_events::BackupId;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum ComplianceCommand {
    /// Judge backups against their profiles: every rule pass or fail, with
    /// its evidence. Exits 5 when a rule fails.
    Check(CheckArgs),
    /// A report for an auditor: one profile's findings over the backups
    /// taken in a period, as HTML that prints well (and PDF with --pdf),
    /// with the evidence bundle beside it. Exits 5 when a rule fails.
    Report(ReportArgs),
    /// Copy backups to the archive network their profile names, verify
    /// and lock them there, and (with `release_regular`) only then take them
    /// off their regular networks. Every step is ledgered; run it again to
    /// finish what a killed run began.
    Migrate(MigrateArgs),
    /// The profiles (built-in and configured) and their rules.
    Profiles(ProfilesArgs),
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Seconds to wait for the ledger to record each migration before
    /// anything is deleted.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The profile reported on (the backups it applies to).
    #[arg(long)]
    profile: String,
    /// First day of the period (YYYY-MM-DD; default: the beginning).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Last day of the period (YYYY-MM-DD; default: today). Rules are
    /// judged as at its end, or now if that is sooner.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Only this dataset's backups.
    #[arg(long)]
    dataset: Option<String>,
    /// The HTML report; the evidence bundle goes beside it
    /// (`NAME.evidence.json`).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also print the report to this PDF (headless Chromium).
    #[arg(long, value_name = "FILE")]
    pdf: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Also hold every backup in scope to this profile (repeatable).
    #[arg(long = "profile", value_name = "NAME")]
    profiles: Vec<String>,
    /// Judge time-bound rules (drill age) as at this time (RFC 3339),
    /// instead of now.
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// Write the document (JSON, with proofs) to FILE.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the document (JSON) instead of the findings.
    #[arg(long)]
    json: bool,
}

/// Which backups: one, a dataset's, or all (those the command applies to).
#[derive(clap::Args)]
pub struct ScopeArgs {
    /// The backup.
    #[arg(required_unless_present_any = ["dataset", "all"], conflicts_with_all = ["dataset", "all"])]
    backup_id: Option<BackupId>,
    /// Every backup of this dataset that a profile applies to.
    #[arg(long, conflicts_with = "all")]
    dataset: Option<String>,
    /// Every backup that a profile applies to.
    #[arg(long)]
    all: bool,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        match (&self.backup_id, &self.dataset) {
            (Some(id), _) => Scope::Backup(id.to_string()),
            (None, Some(d)) => Scope::Dataset(d.clone()),
            (None, None) => Scope::All,
        }
    }
}

#[derive(clap::Args)]
pub struct ProfilesArgs {
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: ComplianceCommand) -> anyhow::Result<u8> {
    match c {
        ComplianceCommand::Check(a) => check(cfg, a).await,
        ComplianceCommand::Report(a) => report(cfg, a).await,
        ComplianceCommand::Migrate(a) => migrate(cfg, a).await,
        ComplianceCommand::Profiles(a) => profiles(cfg, a),
    }
}

async fn check(cfg: &Config, a: CheckArgs) -> anyhow::Result<u8> {
    let now = context::clock(a.as_of.as_deref())?;
    let scope = a.scope.scope();
    for p in &a.profiles {
        cfg.compliance.named(p)?;
    }
    let ctx = Judging::open(cfg).await?;
    let shreddable = |d: &str| cfg.shreddable(d);
    let judge = Judge {
        selector: &ctx.selector,
        also: a.profiles.clone(),
        shreddable: &shreddable,
        repo: ctx.facts.clone(),
        cosigned: &ctx.cosigned,
        now,
        only: None,
        taken: None,
    };
    let doc = judge.run(&ctx.pg, &scope).await?;
    if let (Scope::Dataset(d), true) = (&scope, doc.backups.is_empty()) {
        bail!(
            "no backup of dataset {d:?} is held to a compliance profile (name one with --profile)"
        );
    }
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)
            .with_context(|| out.display().to_string())?;
    }
    if a.json {
        output::json(&doc)?;
    } else {
        print(&doc, a.out.as_ref())?;
    }
    Ok(if doc.tally.failed > 0 {
        exit::RULES_FAILED
    } else {
        0
    })
}

/// What judging needs, read once.
pub(crate) struct Judging {
    pg: tokio_postgres::Client,
    selector: cairn_compliance::Selector,
    cosigned: std::collections::BTreeMap<u64, Vec<u8>>,
    facts: cairn_compliance::evaluate::RepoFacts,
    repo_id: String,
}

impl Judging {
    pub(crate) async fn open(cfg: &Config) -> anyhow::Result<Judging> {
        Judging::with(cfg, context::ledger(cfg).await?).await
    }

    /// As [`Judging::open`], reading the ledger through `pg`.
    pub(crate) async fn with(cfg: &Config, pg: tokio_postgres::Client) -> anyhow::Result<Judging> {
        let repo = context::repo(cfg)?;
        let config = repo
            .config()
            .await
            .context("reading the repository's config from its networks")?;
        let cosigned = super::audit::cosigned_if_up(cfg).await;
        let facts = cairn_compliance::gather::repo(
            &pg,
            config.format,
            cfg.network_facts(),
            cosigned.keys().next_back().copied(),
        )
        .await?;
        Ok(Judging {
            pg,
            selector: cfg.selector(),
            cosigned,
            facts,
            repo_id: config.repo_id,
        })
    }
}

/// `YYYY-MM-DD` as the first or the last instant of that day (UTC).
fn day(s: &str, flag: &str, end: bool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .with_context(|| format!("{flag} {s:?} is not a date (YYYY-MM-DD)"))?;
    let t = if end {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.unwrap_or_default().and_utc())
}

async fn report(cfg: &Config, a: ReportArgs) -> anyhow::Result<u8> {
    let profile = cfg.compliance.named(&a.profile)?;
    let now = chrono::Utc::now();
    let from = match &a.from {
        Some(f) => day(f, "--from", false)?,
        None => chrono::DateTime::UNIX_EPOCH,
    };
    let to = match &a.to {
        Some(t) => day(t, "--to", true)?,
        None => now,
    };
    if from > to {
        bail!(
            "--from {} is after --to {}",
            from.date_naive(),
            to.date_naive()
        );
    }
    let html = a.out.with_extension("html");
    if html != a.out {
        bail!(
            "--out {}: the report is HTML; name it NAME.html",
            a.out.display()
        );
    }
    let bundle = a.out.with_extension("evidence.json");
    let ctx = Judging::open(cfg).await?;
    let shreddable = |d: &str| cfg.shreddable(d);
    let judge = Judge {
        selector: &ctx.selector,
        also: Vec::new(),
        shreddable: &shreddable,
        repo: ctx.facts.clone(),
        cosigned: &ctx.cosigned,
        now: to.min(now),
        only: Some(a.profile.clone()),
        taken: Some((from, to)),
    };
    let scope = match &a.dataset {
        Some(d) => Scope::Dataset(d.clone()),
        None => Scope::All,
    };
    let doc = judge.run(&ctx.pg, &scope).await?;
    let bundle_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = cairn_compliance::report::html(
        &doc,
        &cairn_compliance::report::Frame {
            profile_name: &a.profile,
            profile: &profile,
            from: &from.date_naive().to_string(),
            to: &to.date_naive().to_string(),
            bundle: &bundle_name,
            repo_id: &ctx.repo_id,
        },
    );
    std::fs::write(&bundle, serde_json::to_string_pretty(&doc)?)
        .with_context(|| bundle.display().to_string())?;
    std::fs::write(&html, page).with_context(|| html.display().to_string())?;
    if let Some(pdf) = &a.pdf {
        cairn_compliance::report::print_pdf(&html, pdf)?;
    }
    let t = &doc.tally;
    if a.json {
        #[derive(serde::Serialize)]
        struct Written<'a> {
            html: &'a PathBuf,
            pdf: Option<&'a PathBuf>,
            evidence: &'a PathBuf,
            tally: &'a cairn_compliance::document::Tally,
        }
        output::json(&Written {
            html: &html,
            pdf: a.pdf.as_ref(),
            evidence: &bundle,
            tally: t,
        })?;
    } else {
        out!(
            "report on profile {} for {} backup(s) taken {} to {}: {} passed, {} failed, {} not applicable",
            a.profile,
            t.backups,
            from.date_naive(),
            to.date_naive(),
            t.passed,
            t.failed,
            t.not_applicable
        );
        out!("report: {}", html.display());
        if let Some(pdf) = &a.pdf {
            out!("pdf: {}", pdf.display());
        }
        out!(
            "evidence: {} (check it with `cairn audit check-proof {} --key LOG.pub`)",
            bundle.display(),
            bundle.display()
        );
    }
    Ok(if t.failed > 0 { exit::RULES_FAILED } else { 0 })
}

async fn migrate(cfg: &Config, a: MigrateArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let repo = context::repo(cfg)?;
    let ids = match a.scope.scope() {
        Scope::Backup(id) => vec![id],
        Scope::Dataset(d) => cairn_compliance::gather::backup_ids(&pg, Some(&d)).await?,
        Scope::All => cairn_compliance::gather::backup_ids(&pg, None).await?,
    };
    let selector = cfg.selector();
    if let Some(id) = &a.scope.backup_id {
        // One backup named: say why it is not migrated, if it is not.
        let Some(row) = cairn_ledger::query::backup(&pg, id.as_str()).await? else {
            bail!("backup {id} is not in the ledger (`cairn list` shows the backups)");
        };
        if selector.archives(&row.dataset, &row.tags).is_empty() {
            bail!("no compliance profile of backup {id} names an archive network (immutable_copy's `archive`)");
        }
        if row.status != "completed" {
            bail!(
                "backup {id} is {}: only a completed backup is migrated",
                row.status
            );
        }
    }
    let shreddable = |d: &str| cfg.shreddable(d);
    let attempts = cairn_verify::care::migrate::migrate_all(
        &repo,
        &pg,
        &bus,
        &selector,
        &shreddable,
        &ids,
        &context::whoami("cli"),
        std::time::Duration::from_secs(a.timeout),
    )
    .await?;
    let failed = attempts.iter().filter(|t| !t.done()).count();
    if !a.json {
        for t in &attempts {
            match (&t.migration, &t.error) {
                (Some(m), _) => out!(
                    "backup {} → {}: {} ({} objects copied, {} already there, {} bytes{}{})",
                    t.backup_id,
                    t.to,
                    m.status,
                    m.copied,
                    m.present,
                    m.bytes,
                    m.locked_until
                        .as_deref()
                        .map(|u| format!(", locked until {u}"))
                        .unwrap_or_default(),
                    if m.left.is_empty() {
                        String::new()
                    } else {
                        format!(", gone from {}", m.left.join(", "))
                    }
                ),
                (None, e) => crate::err!(
                    "cairn: backup {} → {}: {}",
                    t.backup_id,
                    t.to,
                    e.as_deref().unwrap_or_default()
                ),
            }
        }
    }
    if a.json {
        #[derive(serde::Serialize)]
        struct Done {
            migrations: Vec<cairn_verify::care::migrate::Attempt>,
        }
        output::json(&Done {
            migrations: attempts,
        })?;
    }
    if failed > 0 {
        crate::err!("cairn: {failed} migration(s) not finished; the backups are whole on their regular networks or, past a recorded `backup.left`, on the archive. Run `cairn compliance migrate` again (and `cairn serve ledger` if the ledger did not record a step)");
        return Ok(exit::DEGRADED);
    }
    Ok(0)
}

fn print(doc: &Document, out: Option<&PathBuf>) -> anyhow::Result<()> {
    for b in &doc.backups {
        out!(
            "backup {} (dataset {}, {}, taken {}){}",
            b.backup_id,
            b.dataset,
            b.status,
            b.requested_at,
            if b.tags.is_empty() {
                String::new()
            } else {
                format!(" tags {}", b.tags.join(","))
            }
        );
        if b.findings.is_empty() {
            out!("  no compliance profile applies to it (name one with --profile)");
        }
        if b.unjudged() {
            out!(
                "  n/a   {} rule(s): {}",
                b.findings.len(),
                if b.reasons.is_empty() {
                    b.findings[0].detail.clone()
                } else {
                    b.reasons.join("; ")
                }
            );
            continue;
        }
        for f in &b.findings {
            let verdict = match f.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::NotApplicable => "n/a ",
            };
            let entries: Vec<String> = f
                .evidence
                .iter()
                .filter_map(|c| match c {
                    Cite::Entry { seq, kind } => Some(format!("#{seq} {kind}")),
                    _ => None,
                })
                .collect();
            out!(
                "  {verdict}  {}/{}: {}{}",
                f.profile,
                f.rule,
                f.detail,
                if entries.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", entries.join(", "))
                }
            );
            out!("        {}: {}", f.control, f.demand);
        }
    }
    let t = &doc.tally;
    out!(
        "{} passed, {} failed, {} not applicable, over {} backup(s), judged as at {}",
        t.passed,
        t.failed,
        t.not_applicable,
        t.backups,
        doc.as_of
    );
    let size = doc
        .checkpoint
        .as_deref()
        .and_then(|c| cairn_tlog::checkpoint::unverified(c.as_bytes()).ok())
        .map(|(s, _)| s);
    match size {
        Some(s) => out!(
            "{} cited ledger entries proven against the signed checkpoint of size {s}{}",
            doc.entries.len(),
            if doc.unproven.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} newer than it, not yet provable (run `cairn audit checkpoint`)",
                    doc.unproven.len()
                )
            }
        ),
        None => out!("no signed checkpoint yet: the cited entries cannot be proven (run `cairn audit checkpoint`)"),
    }
    if let Some(o) = out {
        out!(
            "document: {} (check it offline with `cairn audit check-proof {} --key LOG.pub`)",
            o.display(),
            o.display()
        );
    }
    Ok(())
}

fn profiles(cfg: &Config, a: ProfilesArgs) -> anyhow::Result<u8> {
    let all = cfg.compliance.all();
    if a.json {
        output::json(&all)?;
        return Ok(0);
    }
    for (name, p) in &all {
        let origin = if cfg.compliance.profiles.contains_key(name) {
            "configured"
        } else {
            "built in"
        };
        out!(
            "{name} ({origin}; tags {}): {}",
            p.tags(name).join(", "),
            p.description
        );
        for r in &p.rules {
            out!("  {}: {} ({})", r.id, r.demand.describe(), r.control);
        }
    }
    Ok(0)
}

/// Every rule for `scope`, judged now (the console's evidence and
/// compliance pages).
pub(crate) async fn judged(
    cfg: &Config,
    pg: tokio_postgres::Client,
    scope: &Scope,
) -> anyhow::Result<Document> {
    let ctx = Judging::with(cfg, pg).await?;
    let shreddable = |d: &str| cfg.shreddable(d);
    let judge = Judge {
        selector: &ctx.selector,
        also: Vec::new(),
        shreddable: &shreddable,
        repo: ctx.facts.clone(),
        cosigned: &ctx.cosigned,
        now: chrono::Utc::now(),
        only: None,
        taken: None,
    };
    Ok(judge.run(&ctx.pg, scope).await?)
}
