//! One trace per backup across processes: the W3C trace context
//! (`traceparent`, `tracestate`) travels in the headers of every NATS
//! message Cairn sends, as the OpenTelemetry messaging conventions describe,
//! and the span that handles a message takes the sender's span as its
//! parent. So a tracing backend shows request → ingest → encrypt →
//! store[each network] → verify → ledger as one tree, whichever processes
//! ran the stages.
//!
//! The bus knows headers, this module knows OpenTelemetry: they meet in two
//! plain functions over `(name, value)` pairs.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The headers that carry the current span's context; none outside a span
/// (or when no trace is being kept).
pub fn current_headers() -> Vec<(String, String)> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut map);
    let mut out: Vec<_> = map.into_iter().collect();
    out.sort();
    out
}

/// Makes `span` (not yet entered) a child of the context in the message's
/// headers (`get` looks one up, case-insensitively as NATS does), and
/// records its trace id in the span's `trace_id` field, so every log line
/// inside it names the trace. A message without a context starts a trace of
/// its own.
pub fn adopt(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let mut found = HashMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = get(name) {
            found.insert(name.to_string(), v);
        }
    }
    if !found.is_empty() {
        let parent = TraceContextPropagator::new().extract(&found);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    record_trace_id(span);
}

/// Records `span`'s trace id in its `trace_id` field (a root span: the
/// backup a client asks for, a scheduled run).
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// `span`'s trace id, as 32 hex digits; none when no trace is kept.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
