//! The console's HTTP surface: the embedded page, read-only JSON from the
//! ledger, the live feed as server-sent events, and actions behind an
//! operator's token.

use crate::live::{Feed, Happened};
use crate::Console;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_events::{BackupId, DeadLetter, Envelope, Event, OperatorAction};
use serde::Deserialize;
use std::sync::Arc;

pub struct State {
    pub console: Console,
    pub feed: Feed,
    pub lag: crate::trend::Lag,
    /// A backup's health reads its objects on every network (egress that
    /// costs money): one read at a time, each answer kept a minute unless
    /// the backup's ledger moves.
    pub health: Memo,
    /// Judging every backup is the heaviest read: kept 30 s unless the
    /// ledger moves.
    pub compliance: Memo,
    /// Cosignatures are replayed from the AUDIT stream: kept 10 s.
    pub witness: Memo,
}

/// Answers kept for a while, computed one at a time: what many open pages
/// (or a reload loop) ask for costs what one asking once a `ttl` would.
pub struct Memo {
    ttl: std::time::Duration,
    kept: tokio::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, serde_json::Value)>,
    >,
}

impl Memo {
    pub fn new(ttl: std::time::Duration) -> Memo {
        Memo {
            ttl,
            kept: Default::default(),
        }
    }

    /// The answer for `key` if one younger than the ttl is kept, else
    /// `f`'s (kept if it succeeded). The lock is held while `f` runs, so
    /// requests for anything this memo keeps wait their turn.
    pub async fn get<F, Fut>(&self, key: &str, f: F) -> Result<serde_json::Value, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value, String>>,
    {
        let mut kept = self.kept.lock().await;
        kept.retain(|_, (at, _)| at.elapsed() < self.ttl);
        if let Some((_, v)) = kept.get(key) {
            return Ok(v.clone());
        }
        let v = f().await?;
        kept.insert(key.to_string(), (std::time::Instant::now(), v.clone()));
        Ok(v)
    }
}

type Shared = Arc<State>;

/// The most backups one list shows (filter to see others).
pub const PAGE: i64 = 500;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { page(crate::assets::INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", crate::assets::APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css", crate::assets::APP_CSS) }),
        )
        .route("/api/backups", get(backups))
        .route("/api/backups/{id}", get(backup))
        .route("/api/backups/{id}/evidence", get(evidence))
        .route("/api/backups/{id}/repair", post(repair))
        .route("/api/backups/{id}/health", get(health))
        .route("/api/backups/{id}/hold", post(hold))
        .route("/api/backups/{id}/release", post(release))
        .route("/api/datasets/{dataset}/drill", post(drill))
        .route("/api/events", get(events))
        .route("/api/networks", get(networks))
        .route("/api/ledger", get(ledger))
        .route("/api/deadletters", get(dead_letters))
        .route("/api/deadletters/{seq}/retry", post(retry))
        .route("/api/schedules", get(schedules))
        .route("/api/retention", get(retention))
        .route("/api/compliance", get(compliance))
        .route("/api/trends", get(trends))
        .route("/api/datasets", get(datasets))
        .with_state(state)
}

/// Headers every answer carries: the page runs only its own script, is
/// never framed, and sends no referrer.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(body: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// An error answer: `{"error": why}`.
fn error(status: StatusCode, why: impl std::fmt::Display) -> Response {
    Refusal(status, why.to_string()).into_response()
}

/// A request the console will not serve, and why.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.1 }));
        hardened((self.0, body).into_response())
    }
}

fn json(v: impl serde::Serialize) -> Response {
    hardened(Json(v).into_response())
}

fn db_error(e: tokio_postgres::Error) -> Response {
    tracing::warn!(error = %e, "console: ledger query failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the ledger (PostgreSQL): {e}"),
    )
}

#[derive(Deserialize)]
struct ListQuery {
    dataset: Option<String>,
    tag: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn backups(Extract(s): Extract<Shared>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(PAGE).clamp(1, PAGE);
    match cairn_ledger::query::backups_page(
        &s.console.pg,
        nonempty(&q.dataset),
        nonempty(&q.tag),
        nonempty(&q.status),
        limit,
    )
    .await
    {
        Ok(rows) => json(serde_json::json!({ "backups": rows })),
        Err(e) => db_error(e),
    }
}

fn backup_id(id: &str) -> Result<BackupId, Refusal> {
    BackupId::parse(id).map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("{id:?}: {e}")))
}

async fn backup(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let pg = &s.console.pg;
    let row = match cairn_ledger::query::backup(pg, id.as_str()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no backup {id} in the ledger"),
            )
        }
        Err(e) => return db_error(e),
    };
    let timeline = match cairn_ledger::query::timeline(pg, id.as_str()).await {
        Ok(t) => t,
        Err(e) => return db_error(e),
    };
    let hold = match cairn_ledger::query::hold(pg, id.as_str()).await {
        Ok(h) => h,
        Err(e) => return db_error(e),
    };
    json(serde_json::json!({ "backup": row, "timeline": timeline, "hold": hold }))
}

async fn evidence(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match s.console.ops.evidence(&id).await {
        Ok(doc) => json(doc),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// The operator presenting `Authorization: Bearer TOKEN`, or the answer
/// refusing the action.
fn operator(s: &State, headers: &HeaderMap, action: &str) -> Result<String, Refusal> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            format!("{action} needs an operator token (Authorization: Bearer TOKEN); the console is read-only without one"),
        ));
    };
    match s.console.operators.who(token) {
        Some(name) => Ok(name.to_string()),
        None => Err(Refusal(
            StatusCode::FORBIDDEN,
            format!("that token is not an operator's; {action} refused"),
        )),
    }
}

/// Records an operator's action in the ledger.
async fn ledger_action(s: &State, backup: &BackupId, a: OperatorAction) -> Result<(), String> {
    let parts = [
        a.operator.as_bytes().to_vec(),
        a.action.as_bytes().to_vec(),
        a.target.as_bytes().to_vec(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_be_bytes()
            .to_vec(),
    ];
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let env = Envelope::new(
        s.console.source.clone(),
        backup.clone(),
        Event::OperatorAction(a),
        &refs,
    );
    s.console
        .bus
        .publish_event(&env)
        .await
        .map_err(|e| e.to_string())
}

/// What an action answers: who did it and what happened.
type Acted = Result<String, String>;

/// Runs one operator's action: refused (401, 403) without an operator's
/// token, otherwise run and ledgered (`operator.action`, with the outcome
/// whether it worked or not) against `backup` (the repository's id when it
/// concerns no backup).
async fn act<F, Fut>(
    s: &Shared,
    headers: &HeaderMap,
    action: &str,
    backup: BackupId,
    target: String,
    run: F,
) -> Response
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Acted>,
{
    let who = match operator(s, headers, action) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    tracing::info!(operator = who, action, target, "console: operator action");
    let result = run(who.clone()).await;
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let recorded = ledger_action(
        s,
        &backup,
        OperatorAction {
            operator: who.clone(),
            action: action.into(),
            target,
            outcome,
        },
    )
    .await;
    if let Err(e) = recorded {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the {action} ran but could not be ledgered: {e}"),
        );
    }
    match result {
        Ok(summary) => {
            json(serde_json::json!({ "operator": who, "action": action, "summary": summary }))
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn repair(
    Extract(s): Extract<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let ops = s.console.ops.clone();
    let target = id.to_string();
    act(
        &s,
        &headers,
        "repair",
        id.clone(),
        target,
        |who| async move { ops.repair(&id, &who).await },
    )
    .await
}

async fn health(Extract(s): Extract<Shared>, Path(id): Path<String>) -> Response {
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    // Kept until the backup's ledger moves (a repair) or a minute passes.
    let at = match newest_entry(&s.console.pg, Some(id.as_str())).await {
        Ok(n) => n,
        Err(e) => return db_error(e),
    };
    let ops = &s.console.ops;
    read(
        s.health
            .get(&format!("{id}@{at}"), || ops.health(&id))
            .await,
    )
}

/// A hold's or release's body: `{"reason": "..."}`.
#[derive(Deserialize)]
struct Because {
    reason: String,
}

/// The reason in a request's body, or the answer refusing it.
fn reason(body: &str, action: &str) -> Result<String, Refusal> {
    let b: Because = serde_json::from_str(body).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("{action} needs a JSON body {{\"reason\": \"...\"}}: {e}"),
        )
    })?;
    let r = b.reason.trim();
    if r.is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{action} needs a reason (a case number, a request): it is ledgered"),
        ));
    }
    if r.len() > 500 {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{action}: the reason is {} bytes; at most 500", r.len()),
        ));
    }
    Ok(r.to_string())
}

async fn hold(s: Extract<Shared>, id: Path<String>, headers: HeaderMap, body: String) -> Response {
    hold_or_release(s, id, headers, body, true).await
}

async fn release(
    s: Extract<Shared>,
    id: Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    hold_or_release(s, id, headers, body, false).await
}

async fn hold_or_release(
    Extract(s): Extract<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
    on: bool,
) -> Response {
    let action = if on { "hold" } else { "release" };
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    // Who asks comes first: without a token, nothing about the request
    // matters.
    if let Err(r) = operator(&s, &headers, action) {
        return r.into_response();
    }
    let why = match reason(&body, action) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let ops = s.console.ops.clone();
    let target = format!("{id}: {why}");
    act(&s, &headers, action, id.clone(), target, |who| async move {
        ops.hold(&id, on, &why, &who).await
    })
    .await
}

/// A dataset name as the configuration allows it.
fn dataset_name(d: &str) -> Result<String, Refusal> {
    let ok = !d.is_empty()
        && d.len() <= 128
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(d.to_string())
    } else {
        Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{d:?} is not a dataset name (letters, digits, '-', '_', '.')"),
        ))
    }
}

async fn drill(
    Extract(s): Extract<Shared>,
    Path(dataset): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dataset = match dataset_name(&dataset) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let ops = s.console.ops.clone();
    let target = format!("dataset {dataset}");
    act(
        &s,
        &headers,
        "drill",
        BackupId::repo(),
        target,
        |who| async move { ops.drill(&dataset, &who).await },
    )
    .await
}

/// A dead letter recorded in the ledger at `seq`, and the backup it
/// concerns.
async fn dead_letter_at(
    pg: &tokio_postgres::Client,
    seq: i64,
) -> Result<Option<(BackupId, DeadLetter)>, tokio_postgres::Error> {
    let row = pg
        .query_opt(
            "SELECT entry FROM ledger_entries WHERE seq = $1 AND kind = 'event.deadlettered'",
            &[&seq],
        )
        .await?;
    Ok(row.and_then(|r| {
        let env: Envelope = cairn_events::decode(r.get::<_, &[u8]>(0), "entry").ok()?;
        match env.event {
            Event::DeadLettered(d) => Some((env.backup_id, d)),
            _ => None,
        }
    }))
}

async fn retry(
    Extract(s): Extract<Shared>,
    Path(seq): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = operator(&s, &headers, "retry") {
        return r.into_response();
    }
    let Ok(seq) = seq.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{seq:?} is not a ledger position"),
        );
    };
    let (backup, letter) = match dead_letter_at(&s.console.pg, seq).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("ledger entry {seq} is not a dead letter"),
            )
        }
        Err(e) => return db_error(e),
    };
    let bus = s.console.bus.clone();
    act(
        &s,
        &headers,
        "retry",
        backup,
        format!("{}{seq}", DEAD_LETTER),
        |_who| async move {
            let tag = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                .to_string();
            bus.redrive(&letter.stage, &letter.payload_sha256, &tag)
                .await
                .map(|r| {
                    format!(
                        "sent again to {} (dead letter {} on the DLQ stream) for {} to take up",
                        r.subject, r.dlq_seq, letter.stage
                    )
                })
                .map_err(|e| e.to_string())
        },
    )
    .await
}

/// The target an operator's retry names: `dead-letter:<ledger seq>`.
const DEAD_LETTER: &str = "dead-letter:";

/// A document an `Operations` read returns, or why not.
fn read(doc: Result<serde_json::Value, String>) -> Response {
    match doc {
        Ok(doc) => json(doc),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn schedules(Extract(s): Extract<Shared>) -> Response {
    read(s.console.ops.schedules().await)
}

async fn retention(Extract(s): Extract<Shared>) -> Response {
    read(s.console.ops.retention_plan().await)
}

async fn compliance(Extract(s): Extract<Shared>) -> Response {
    // Judged again once the ledger has moved (or after the ttl: a witness
    // cosigning changes verdicts without an entry).
    let at = match newest_entry(&s.console.pg, None).await {
        Ok(n) => n,
        Err(e) => return db_error(e),
    };
    let ops = &s.console.ops;
    read(
        s.compliance
            .get(&format!("all@{at}"), || ops.compliance())
            .await,
    )
}

/// The ledger's newest entry (of one backup's).
async fn newest_entry(
    pg: &tokio_postgres::Client,
    backup: Option<&str>,
) -> Result<i64, tokio_postgres::Error> {
    let row = match backup {
        Some(b) => {
            pg.query_one(
                "SELECT coalesce(max(seq), 0) FROM ledger_entries WHERE backup_id = $1",
                &[&b],
            )
            .await?
        }
        None => {
            pg.query_one("SELECT coalesce(max(seq), 0) FROM ledger_entries", &[])
                .await?
        }
    };
    Ok(row.get(0))
}

/// Every dataset, its newest backup and its drills.
async fn datasets(Extract(s): Extract<Shared>) -> Response {
    let pg = &s.console.pg;
    let rows = match cairn_ledger::query::datasets(pg).await {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let drills = match cairn_ledger::query::drills(pg).await {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    json(serde_json::json!({ "datasets": rows, "drills": drills }))
}

#[derive(Deserialize)]
struct TrendQuery {
    /// Seconds back from now (default an hour).
    window: Option<i64>,
}

/// Throughput (from the ledger) and each consumer's lag (sampled since
/// the console started) over the last `window` seconds.
async fn trends(Extract(s): Extract<Shared>, Query(q): Query<TrendQuery>) -> Response {
    let window = q.window.unwrap_or(3600).clamp(60, 30 * 86_400);
    // About 60 bars, whatever the window.
    let bucket = (window / 60).max(10);
    let finished =
        match cairn_ledger::query::finished_over_time(&s.console.pg, window, bucket).await {
            Ok(f) => f,
            Err(e) => return db_error(e),
        };
    json(serde_json::json!({
        "window": window,
        "bucket": bucket,
        "finished": finished,
        "lag_every": crate::trend::EVERY.as_secs(),
        "lag": s.lag.series(window),
    }))
}

async fn events(Extract(s): Extract<Shared>) -> Response {
    let rx = s.feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let e = match rx.recv().await {
            Ok(h) => sse(&h),
            // Fell behind: tell the page to load again.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                SseEvent::default().event("lagged").data("{}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(e), rx))
    });
    hardened(
        Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

fn sse(h: &Happened) -> SseEvent {
    SseEvent::default()
        .event(h.source)
        .json_data(h)
        .unwrap_or_else(|_| SseEvent::default().event(h.source).data("{}"))
}

/// Each configured network: what the ledger counts there, its quota and
/// a month of it at its price.
async fn networks(Extract(s): Extract<Shared>) -> Response {
    let held = match cairn_ledger::usage::held(&s.console.pg, None).await {
        Ok(h) => h,
        Err(e) => return db_error(e),
    };
    let rows: Vec<serde_json::Value> = s
        .console
        .networks
        .iter()
        .map(|n| {
            let h = held.iter().find(|h| h.network == n.name);
            let bytes = h.map(|h| h.bytes).unwrap_or(0);
            serde_json::json!({
                "network": n,
                "objects": h.map(|h| h.objects).unwrap_or(0),
                "bytes": bytes,
                "cost_month": n.price_gb_month.map(|p| bytes as f64 / 1e9 * p),
            })
        })
        .collect();
    json(serde_json::json!({ "networks": rows }))
}

/// The ledger's size, its newest checkpoints, and each dataset's drills.
async fn ledger(Extract(s): Extract<Shared>) -> Response {
    let pg = &s.console.pg;
    let vitals = match cairn_ledger::vitals::read(pg).await {
        Ok(v) => v,
        Err(e) => return db_error(e),
    };
    let checkpoints = match pg
        .query(
            "SELECT size, encode(root, 'hex'),
                    to_char(issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM ledger_checkpoints ORDER BY size DESC LIMIT 10",
            &[],
        )
        .await
    {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "size": r.get::<_, i64>(0),
                    "root": r.get::<_, String>(1),
                    "issued_at": r.get::<_, String>(2),
                })
            })
            .collect::<Vec<_>>(),
        Err(e) => return db_error(e),
    };
    let drills = match cairn_ledger::query::drills(pg).await {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    // The witness's state is on the broker; a broker that does not answer
    // leaves the rest of the page standing.
    let bus = &s.console.bus;
    let witness = s
        .witness
        .get("cosigned", || async {
            witnessed(bus).await.map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| serde_json::json!({ "error": e }));
    json(serde_json::json!({
        "entries": vitals.entries,
        "checkpoint_at": vitals.checkpoint_at,
        "checkpoints": checkpoints,
        "drills": drills,
        "witness": witness,
    }))
}

/// The newest dead letters, with their reasons, as the ledger recorded
/// them.
async fn dead_letters(Extract(s): Extract<Shared>) -> Response {
    let rows = match s
        .console
        .pg
        .query(
            "SELECT seq, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), entry
             FROM ledger_entries WHERE kind = 'event.deadlettered'
             ORDER BY seq DESC LIMIT 200",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let retried = match retries(&s.console.pg).await {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let letters: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| {
            let env: Envelope = cairn_events::decode(r.get::<_, &[u8]>(2), "entry").ok()?;
            let Event::DeadLettered(d) = env.event else {
                return None;
            };
            Some(serde_json::json!({
                "seq": r.get::<_, i64>(0),
                "recorded_at": r.get::<_, String>(1),
                "backup_id": env.backup_id,
                "stage": d.stage,
                "subject": d.subject,
                "reason": d.reason,
                "deliveries": d.deliveries,
                "retried": retried.get(&r.get::<_, i64>(0)).cloned().unwrap_or_default(),
            }))
        })
        .collect();
    json(serde_json::json!({ "dead_letters": letters }))
}

/// Operators' retries of dead letters, by the dead letter's ledger
/// position.
async fn retries(
    pg: &tokio_postgres::Client,
) -> Result<std::collections::HashMap<i64, Vec<serde_json::Value>>, tokio_postgres::Error> {
    let rows = pg
        .query(
            "SELECT to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), entry
             FROM ledger_entries WHERE kind = 'operator.action'
             ORDER BY seq DESC LIMIT 1000",
            &[],
        )
        .await?;
    let mut out: std::collections::HashMap<i64, Vec<serde_json::Value>> = Default::default();
    for r in &rows {
        let Ok(env) = cairn_events::decode::<Envelope>(r.get::<_, &[u8]>(1), "entry") else {
            continue;
        };
        let Event::OperatorAction(a) = env.event else {
            continue;
        };
        let Some(seq) = a
            .target
            .strip_prefix(DEAD_LETTER)
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        out.entry(seq).or_default().push(serde_json::json!({
            "operator": a.operator,
            "at": r.get::<_, String>(0),
            "outcome": a.outcome,
        }));
    }
    Ok(out)
}

/// What witnesses have cosigned (`audit.cosigned` on the AUDIT stream):
/// the newest sizes, and who signed each, from the note's signature lines.
async fn witnessed(bus: &cairn_bus::Bus) -> Result<serde_json::Value, cairn_bus::BusError> {
    let cosigned = cairn_ledger::prove::cosigned(bus).await?;
    let newest: Vec<serde_json::Value> = cosigned
        .iter()
        .rev()
        .take(10)
        .map(|(size, note)| serde_json::json!({ "size": size, "signers": signers(note) }))
        .collect();
    Ok(serde_json::json!({
        "count": cosigned.len(),
        "newest": newest,
    }))
}

/// The names on a signed note's signature lines (`— NAME SIG`), after the
/// blank line that ends its text. The first is the log's own.
fn signers(note: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(note);
    let Some((_, sigs)) = text.split_once("\n\n") else {
        return Vec::new();
    };
    sigs.lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn signers_are_read_off_the_signature_lines() {
        let note = "cairn.test/ledger\n42\nROOT=\n\n\u{2014} cairn.test/ledger AAAA\n\u{2014} cairn.test/witness BBBB\n";
        assert_eq!(
            super::signers(note.as_bytes()),
            vec!["cairn.test/ledger", "cairn.test/witness"]
        );
        assert!(super::signers(b"no signatures").is_empty());
    }

    #[test]
    fn a_reason_is_required_and_bounded() {
        assert!(super::reason(r#"{"reason":"case 7"}"#, "hold").is_ok());
        let e = super::reason(r#"{"reason":"  "}"#, "hold").err().unwrap();
        assert!(e.1.contains("needs a reason"));
        let e = super::reason("not json", "hold").err().unwrap();
        assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.1.contains("JSON body"));
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(501));
        assert!(super::reason(&long, "hold").is_err());
    }

    #[test]
    fn dataset_names_are_checked() {
        assert!(super::dataset_name("docs-2.x").is_ok());
        assert!(super::dataset_name("../etc").is_err());
        assert!(super::dataset_name("").is_err());
    }
}
