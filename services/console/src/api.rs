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
use cairn_events::{BackupId, Envelope, Event, OperatorAction};
use serde::Deserialize;
use std::sync::Arc;

pub struct State {
    pub console: Console,
    pub feed: Feed,
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
        .route("/api/events", get(events))
        .route("/api/networks", get(networks))
        .route("/api/ledger", get(ledger))
        .route("/api/deadletters", get(dead_letters))
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

async fn repair(
    Extract(s): Extract<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match backup_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let who = match operator(&s, &headers, "repair") {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    tracing::info!(operator = who, backup = %id, "console: repair");
    let result = s.console.ops.repair(&id, &who).await;
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let recorded = ledger_action(
        &s,
        &id,
        OperatorAction {
            operator: who.clone(),
            action: "repair".into(),
            target: id.to_string(),
            outcome,
        },
    )
    .await;
    if let Err(e) = recorded {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the repair ran but could not be ledgered: {e}"),
        );
    }
    match result {
        Ok(summary) => json(serde_json::json!({ "operator": who, "summary": summary })),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
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
    json(serde_json::json!({
        "entries": vitals.entries,
        "checkpoint_at": vitals.checkpoint_at,
        "checkpoints": checkpoints,
        "drills": drills,
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
            }))
        })
        .collect();
    json(serde_json::json!({ "dead_letters": letters }))
}
