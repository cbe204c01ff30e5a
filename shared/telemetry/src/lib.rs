//! Logging and tracing set-up, shared by every binary: `tracing` to stderr,
//! as text or JSON, filtered by `telemetry.log` (or `RUST_LOG`).
//! Nothing Cairn logs carries key material or backed-up data: keys are
//! `Secret`/`Key32` (redacted `Debug`) and data types print only lengths.

use cairn_config::TelemetryConfig;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default` is the level when neither the
/// config nor `RUST_LOG` says otherwise (CLI commands are quieter than `serve`).
pub fn init(cfg: &TelemetryConfig, default: &str) -> anyhow::Result<()> {
    let filter = match (std::env::var("RUST_LOG"), &cfg.log) {
        (Ok(v), _) if !v.is_empty() => EnvFilter::try_new(v)?,
        (_, Some(level)) => EnvFilter::try_new(level)?,
        _ => EnvFilter::try_new(default)?,
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = match cfg.format.as_str() {
        "json" => builder.json().try_init(),
        "text" => builder.try_init(),
        other => anyhow::bail!("telemetry.format {other:?}: expected text or json"),
    };
    result.map_err(|e| anyhow::anyhow!("telemetry: {e}"))?;
    if let Some(endpoint) = &cfg.otlp_endpoint {
        tracing::warn!(endpoint, "telemetry.otlp_endpoint is set, but this build has no OpenTelemetry exporter yet; logging to stderr only");
    }
    Ok(())
}
