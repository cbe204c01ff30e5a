//! The ops console (`cairn console`): a web page served by Cairn, fed live
//! from the EVENTS and AUDIT streams over server-sent events, reading the
//! ledger through a read-only database role. What it shows is read; what it
//! does (repair...) needs an operator's token and is ledgered with the
//! operator's name (`operator.action`).
//!
//! The front end (Preact, bundled by esbuild at build time: `build.rs`) is
//! embedded in the binary ([`assets`]). Actions that belong to stages
//! (repair is verify's) reach the console through [`Operations`], which the
//! CLI implements, so the console depends on no stage crate.

pub mod api;
pub mod assets;
pub mod auth;
pub mod live;
pub mod trend;

use cairn_bus::Bus;
use cairn_events::BackupId;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: --listen {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("console: --listen {0} is not a loopback address; the console is for this machine unless [console] allow_remote = true (and then put TLS in front of it)")]
    NotLoopback(String),
    #[error(transparent)]
    Operators(#[from] auth::OperatorsError),
    #[error(transparent)]
    Bus(#[from] cairn_bus::BusError),
    #[error("console: {0}")]
    Serve(String),
}

/// What the console does that belongs to the stages; the CLI implements it.
#[async_trait::async_trait]
pub trait Operations: Send + Sync + 'static {
    /// The compliance evidence of one backup (`cairn compliance check ID
    /// --json`'s document).
    async fn evidence(&self, backup: &BackupId) -> Result<serde_json::Value, String>;
    /// Repairs one backup (`cairn repair ID`) on `operator`'s behalf: a
    /// one-line summary of what it did.
    async fn repair(&self, backup: &BackupId, operator: &str) -> Result<String, String>;
    /// How well each network holds one backup, from a sample of its
    /// objects (`cairn health ID --json`'s document).
    async fn health(&self, backup: &BackupId) -> Result<serde_json::Value, String>;
    /// Places (`on`) or lifts a legal hold on one backup (`cairn hold` /
    /// `cairn release`) on `operator`'s behalf, for `reason`.
    async fn hold(
        &self,
        backup: &BackupId,
        on: bool,
        reason: &str,
        operator: &str,
    ) -> Result<String, String>;
    /// Runs a restore drill of `dataset`'s newest backup now (`cairn drill
    /// --dataset`) on `operator`'s behalf.
    async fn drill(&self, dataset: &str, operator: &str) -> Result<String, String>;
    /// Every schedule with its next and last run (`cairn schedule list
    /// --json`'s document).
    async fn schedules(&self) -> Result<serde_json::Value, String>;
    /// Keep or drop for every backup and the rule that decided (`cairn
    /// retention plan --json`'s document). Nothing is deleted.
    async fn retention_plan(&self) -> Result<serde_json::Value, String>;
    /// Every backup held to a compliance profile, judged now: each rule's
    /// verdict and what was found, without the proofs (`cairn compliance
    /// check --all` has them).
    async fn compliance(&self) -> Result<serde_json::Value, String>;
}

/// A configured network, as the console shows it beside what the ledger
/// counts there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetworkInfo {
    pub name: String,
    pub kind: String,
    pub price_gb_month: Option<f64>,
    pub quota_bytes: Option<u64>,
}

/// Everything a request handler reads.
pub struct Console {
    /// The configured networks.
    pub networks: Vec<NetworkInfo>,
    /// A read-only role's connection.
    pub pg: tokio_postgres::Client,
    pub bus: Bus,
    pub operators: auth::Operators,
    pub ops: Arc<dyn Operations>,
    /// The `source` of what the console publishes (`console@host`).
    pub source: String,
}

/// Binds `addr`, refusing an address other machines can reach unless
/// `allow_remote`.
pub async fn bind(addr: &str, allow_remote: bool) -> Result<tokio::net::TcpListener, ConsoleError> {
    let listen = |message: String| ConsoleError::Listen {
        addr: addr.to_string(),
        message,
    };
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| listen(e.to_string()))?
        .collect();
    if resolved.is_empty() {
        return Err(listen("resolves to no address".into()));
    }
    if !allow_remote && resolved.iter().any(|a| !a.ip().is_loopback()) {
        return Err(ConsoleError::NotLoopback(addr.to_string()));
    }
    tokio::net::TcpListener::bind(&resolved[..])
        .await
        .map_err(|e| listen(e.to_string()))
}

/// Serves the console on `listener` until the process stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Console,
) -> Result<(), ConsoleError> {
    let feed = live::Feed::start(&console.bus).await?;
    let names: Vec<String> = console.networks.iter().map(|n| n.name.clone()).collect();
    let lag = trend::Lag::start(console.bus.clone(), names, trend::EVERY);
    let state = Arc::new(api::State {
        console,
        feed,
        lag,
        health: api::Memo::new(std::time::Duration::from_secs(60)),
        compliance: api::Memo::new(std::time::Duration::from_secs(30)),
        witness: api::Memo::new(std::time::Duration::from_secs(10)),
    });
    let app = api::router(state);
    axum::serve(listener, app)
        .await
        .map_err(|e| ConsoleError::Serve(e.to_string()))
}
