// What every page of the console shares: fetching, the live feed, the
// operator's token, and small pieces of drawing.
import { h } from "preact";
import { useEffect, useState, useRef, useCallback } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

export async function getJson(url) {
  const r = await fetch(url, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error || `${r.status}`);
  return body;
}

// The operator's token lives in this tab's sessionStorage only.
export const token = () => sessionStorage.getItem("cairn-token") || "";
export const setToken = (t) => sessionStorage.setItem("cairn-token", t);

// An action: POSTs with the token; answers { ok, text } for the page.
export async function act(url, body, done) {
  const t = token();
  const headers = { "content-type": "application/json" };
  if (t) headers.authorization = `Bearer ${t}`;
  const r = await fetch(url, { method: "POST", headers, body: body ? JSON.stringify(body) : "" });
  const b = await r.json().catch(() => ({}));
  return r.ok
    ? { ok: true, text: `${done} by ${b.operator}: ${b.summary}` }
    : { ok: false, text: `refused (${r.status}): ${b.error || r.statusText}` };
}

export const Message = ({ m, id }) =>
  m && html`<p id=${id || "message"} class=${"message " + (m.ok ? "ok" : m.ok === false ? "bad" : "muted")}>${m.text}</p>`;

// One EventSource for the page; components subscribe to what they need.
const listeners = new Set();
let connected = false;
const connectionListeners = new Set();
export function startLive() {
  const es = new EventSource("/api/events");
  const setConnected = (v) => {
    connected = v;
    connectionListeners.forEach((f) => f(v));
  };
  es.onopen = () => setConnected(true);
  es.onerror = () => {
    setConnected(false);
    // The browser tries again on its own after a dropped connection, but
    // gives up for good after an answer it cannot use (a console that was
    // restarting): then this page starts a new feed itself.
    if (es.readyState === EventSource.CLOSED) setTimeout(startLive, 3000);
  };
  // The server says this page fell behind: everything shown loads again.
  es.addEventListener("lagged", () => listeners.forEach((f) => f({ lagged: true })));
  for (const type of ["event", "ledger"]) {
    es.addEventListener(type, (m) => {
      let data;
      try { data = JSON.parse(m.data); } catch { return; }
      data.source = type;
      listeners.forEach((f) => f(data));
    });
  }
}

export function useLive(f) {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    const g = (d) => ref.current(d);
    listeners.add(g);
    return () => listeners.delete(g);
  }, []);
}

export function useConnected() {
  const [on, setOn] = useState(connected);
  useEffect(() => {
    connectionListeners.add(setOn);
    // The feed may have opened between the first render and this effect
    // (effects run after paint): its change reached no listener then.
    setOn(connected);
    return () => connectionListeners.delete(setOn);
  }, []);
  return on;
}

// Marks a page's data stale; it loads again at most every `ms`, however
// many events arrive (a large backup records hundreds a second).
export function useStale(load, ms) {
  const stale = useRef(false);
  useEffect(() => {
    const t = setInterval(() => {
      if (stale.current) { stale.current = false; load(); }
    }, ms);
    return () => clearInterval(t);
  }, [load, ms]);
  return () => { stale.current = true; };
}

// A page fed by one API answer, loaded again (at most every second) when a
// ledger entry of a kind matching `kinds` arrives (at most every `ms`).
export function useLedgerPage(url, kinds, ms = 1000) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(() => {
    getJson(url).then((r) => { setData(r); setError(null); }, (e) => setError(e.message));
  }, [url]);
  useEffect(load, [load]);
  const stale = useStale(load, ms);
  useLive((d) => { if (d.lagged || (d.source === "ledger" && kinds.test(d.kind || ""))) stale(); });
  return [data, error, load];
}

export const Status = ({ s }) => html`<span class=${"status " + s} data-status=${s}>${s}</span>`;

export function bytes(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export const Loading = ({ error }) =>
  error ? html`<p class="bad">${error}</p>` : html`<p class="muted">Loading…</p>`;
