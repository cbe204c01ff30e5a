// Cairn's ops console: one page, hash-routed, fed live by the server's
// event stream (/api/events, server-sent events from the EVENTS and AUDIT
// streams). Read-only but for actions, which need an operator token
// (kept in this tab's sessionStorage only).
import { h, render } from "preact";
import { useEffect, useState, useRef, useCallback } from "preact/hooks";
import htm from "htm";
import "./style.css";

const html = htm.bind(h);

async function getJson(url) {
  const r = await fetch(url, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error || `${r.status}`);
  return body;
}

// One EventSource for the page; components subscribe to what they need.
const listeners = new Set();
let connected = false;
const connectionListeners = new Set();
function startLive() {
  const es = new EventSource("/api/events");
  const setConnected = (v) => {
    connected = v;
    connectionListeners.forEach((f) => f(v));
  };
  es.onopen = () => setConnected(true);
  es.onerror = () => setConnected(false);
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

function useLive(f) {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    const g = (d) => ref.current(d);
    listeners.add(g);
    return () => listeners.delete(g);
  }, []);
}

function useConnected() {
  const [on, setOn] = useState(connected);
  useEffect(() => {
    connectionListeners.add(setOn);
    return () => connectionListeners.delete(setOn);
  }, []);
  return on;
}

function useRoute() {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const f = () => setHash(location.hash || "#/");
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return hash.slice(1).split("/").filter(Boolean);
}

const Status = ({ s }) => html`<span class=${"status " + s} data-status=${s}>${s}</span>`;

function Networks({ b }) {
  const reports = (b.outcome && b.outcome.networks) || [];
  if (!reports.length) return html`${b.networks.map((n) => html`<span class="net">${n}</span>`)}`;
  return html`${reports.map(
    (n) => html`<span class=${"net " + (n.ok ? "ok" : "bad")} title=${n.detail || ""}>${n.network} ${n.ok ? "✓" : "✗"}</span>`,
  )}`;
}

function matches(b, f) {
  return (!f.dataset || b.dataset === f.dataset) &&
    (!f.tag || (b.tags || []).includes(f.tag)) &&
    (!f.status || b.status === f.status);
}

function Backups() {
  const [filter, setFilter] = useState({ dataset: "", tag: "", status: "" });
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const pending = useRef(new Set());

  const load = useCallback(() => {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v));
    getJson(`/api/backups?${q}`).then((r) => { setRows(r.backups); setError(null); }, (e) => setError(e.message));
  }, [filter]);
  useEffect(load, [load]);

  // A live event names a backup: fetch its row again (at most every 100 ms).
  useLive((d) => {
    if (d.lagged) load();
    else if (d.backup_id && d.backup_id !== "repo") pending.current.add(d.backup_id);
  });
  useEffect(() => {
    const t = setInterval(async () => {
      const ids = [...pending.current];
      pending.current.clear();
      for (const id of ids) {
        let r;
        try { r = await getJson(`/api/backups/${id}`); } catch { continue; }
        const b = r.backup;
        setRows((rows) => {
          if (!rows) return rows;
          const rest = rows.filter((x) => x.backup_id !== id);
          if (!matches(b, filter) || b.status === "forgotten") return rest;
          return [b, ...rest].sort((x, y) => (y.requested_at || "").localeCompare(x.requested_at || "") || y.backup_id.localeCompare(x.backup_id));
        });
      }
    }, 100);
    return () => clearInterval(t);
  }, [filter]);

  const set = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  return html`
    <div class="filters">
      <input placeholder="dataset" value=${filter.dataset} onChange=${set("dataset")} name="dataset" />
      <input placeholder="tag" value=${filter.tag} onChange=${set("tag")} name="tag" />
      <select value=${filter.status} onChange=${set("status")} name="status">
        ${["", "requested", "running", "verifying", "completed", "degraded", "failed"].map(
          (s) => html`<option value=${s}>${s || "any status"}</option>`,
        )}
      </select>
    </div>
    ${error && html`<p class="bad">${error}</p>`}
    ${rows === null ? html`<p class="muted">Loading…</p>` : html`
      <table id="backups">
        <thead><tr><th>backup</th><th>dataset</th><th>status</th><th>requested</th><th>networks</th><th>size</th></tr></thead>
        <tbody>
          ${rows.map((b) => html`
            <tr data-backup=${b.backup_id}>
              <td><a class="mono" href=${"#/backup/" + b.backup_id}>${b.backup_id}</a></td>
              <td>${b.dataset}</td>
              <td><${Status} s=${b.status} /></td>
              <td class="muted">${b.requested_at || ""}</td>
              <td><${Networks} b=${b} /></td>
              <td class="muted">${b.stats ? bytes(b.stats.bytes_read) : ""}</td>
            </tr>`)}
        </tbody>
      </table>
      <p class="muted">${rows.length} backups${rows.length >= 500 ? " (the newest 500; filter to see others)" : ""}</p>`}
  `;
}

function bytes(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function Backup({ id }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [evidence, setEvidence] = useState(null);
  const [token, setToken] = useState(sessionStorage.getItem("cairn-token") || "");
  const [message, setMessage] = useState(null);
  const load = useCallback(() => {
    getJson(`/api/backups/${id}`).then((r) => { setData(r); setError(null); }, (e) => setError(e.message));
  }, [id]);
  useEffect(load, [load]);
  const stale = useStale(load, 250);
  useLive((d) => { if (d.lagged || d.backup_id === id) stale(); });

  const openEvidence = () => {
    setEvidence({ loading: true });
    getJson(`/api/backups/${id}/evidence`).then((r) => setEvidence({ doc: r }), (e) => setEvidence({ error: e.message }));
  };
  const repair = async () => {
    sessionStorage.setItem("cairn-token", token);
    setMessage({ text: "repairing…" });
    const r = await fetch(`/api/backups/${id}/repair`, {
      method: "POST",
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const body = await r.json().catch(() => ({}));
    setMessage(r.ok
      ? { ok: true, text: `repaired by ${body.operator}: ${body.summary}` }
      : { ok: false, text: `refused (${r.status}): ${body.error || r.statusText}` });
  };

  if (error) return html`<p class="bad">${error}</p>`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  const b = data.backup;
  return html`
    <p><a href="#/">← backups</a></p>
    <div class="panel" id="backup">
      <h2>Backup <span class="mono">${b.backup_id}</span> <${Status} s=${b.status} /></h2>
      <table>
        <tr><th>dataset</th><td>${b.dataset}</td></tr>
        <tr><th>tags</th><td>${(b.tags || []).join(", ")}</td></tr>
        <tr><th>requested</th><td>${b.requested_at} by ${b.requested_by}</td></tr>
        <tr><th>finished</th><td>${b.finished_at || ""}</td></tr>
        <tr><th>networks</th><td><${Networks} b=${b} /></td></tr>
        ${b.stats && html`<tr><th>read / stored</th><td>${bytes(b.stats.bytes_read)} / ${bytes(b.stats.bytes_stored)}, ${b.stats.chunks_total} chunks (${b.stats.chunks_new} new)</td></tr>`}
        ${data.hold && html`<tr><th>hold</th><td class="warn">${data.hold.reason} (by ${data.hold.held_by})</td></tr>`}
        ${b.outcome && b.outcome.reasons && b.outcome.reasons.length > 0 && html`<tr><th>reasons</th><td class="bad">${b.outcome.reasons.join("; ")}</td></tr>`}
      </table>
    </div>
    <div class="panel">
      <h2>Timeline through the stages</h2>
      <ul class="timeline" id="timeline">
        ${data.timeline.map((t) => html`
          <li data-kind=${t.kind}><code>${t.kind}</code>${t.count > 1 ? ` ×${t.count}` : ""}
            <span class="muted"> ${t.first}${t.last !== t.first ? ` → ${t.last}` : ""}</span></li>`)}
      </ul>
    </div>
    <div class="panel">
      <h2>Evidence and actions</h2>
      <div class="actions">
        <button id="evidence" onClick=${openEvidence}>Open evidence</button>
        <input id="token" type="password" placeholder="operator token" value=${token} onInput=${(e) => setToken(e.target.value)} />
        <button id="repair" onClick=${repair}>Repair</button>
      </div>
      ${message && html`<p id="message" class=${"message " + (message.ok ? "ok" : message.ok === false ? "bad" : "muted")}>${message.text}</p>`}
      ${evidence && (evidence.loading ? html`<p class="muted">Judging…</p>`
        : evidence.error ? html`<p class="bad" id="evidence-doc">${evidence.error}</p>`
        : html`<div id="evidence-doc">
            <p>${evidence.doc.tally ? `${evidence.doc.tally.passed} passed, ${evidence.doc.tally.failed} failed, ${evidence.doc.tally.not_applicable ?? 0} n/a` : ""}
            ${evidence.doc.checkpoint ? html` · checkpoint of size ${evidence.doc.checkpoint.size}` : ""}</p>
            <pre>${JSON.stringify(evidence.doc, null, 2)}</pre></div>`)}
    </div>`;
}

// Marks a page's data stale; it loads again at most every `ms`, however
// many events arrive (a large backup records hundreds a second).
function useStale(load, ms) {
  const stale = useRef(false);
  useEffect(() => {
    const t = setInterval(() => {
      if (stale.current) { stale.current = false; load(); }
    }, ms);
    return () => clearInterval(t);
  }, [load, ms]);
  return () => { stale.current = true; };
}

// Bars drawn to scale: people would rather look than read.
function Bars({ rows, value, label }) {
  const max = Math.max(1, ...rows.map(value));
  const h = 26;
  return html`<svg class="bars" width="640" height=${rows.length * h} role="img" aria-label="storage per network">
    ${rows.map((r, i) => html`<g transform=${`translate(0, ${i * h})`}>
      <text x="0" y="17">${r.network.name}</text>
      <rect x="120" y="4" height="16" width=${Math.max(1, (value(r) / max) * 400)} fill="#175cd3"></rect>
      <text x=${130 + (value(r) / max) * 400} y="17" class="muted">${label(r)}</text>
    </g>`)}
  </svg>`;
}

// Which networks hold which backups: the newest backups down, the
// networks across, each cell verify's verdict for that copy.
function Holdings({ backups, networks }) {
  const cell = 14, left = 300, top = 90;
  const verdict = (b, n) => {
    const r = ((b.outcome && b.outcome.networks) || []).find((x) => x.network === n);
    return r ? (r.ok ? "ok" : "bad") : b.networks.includes(n) ? "pending" : "none";
  };
  const fill = { ok: "#1b7f3b", bad: "#b42318", pending: "#98a2b3", none: "#f2f4f7" };
  return html`<svg class="holdings" width=${left + networks.length * (cell + 4) + 10} height=${top + backups.length * (cell + 2)} role="img" aria-label="which networks hold which backups">
    ${networks.map((n, j) => html`<text class="muted" transform=${`translate(${left + j * (cell + 4) + 10}, ${top - 6}) rotate(-45)`}>${n}</text>`)}
    ${backups.map((b, i) => html`<g transform=${`translate(0, ${top + i * (cell + 2)})`}>
      <text x="0" y="11" class="mono">${b.dataset} ${(b.requested_at || "").slice(0, 16)}</text>
      ${networks.map((n, j) => {
        const v = verdict(b, n);
        return html`<rect data-backup=${b.backup_id} data-network=${n} data-verdict=${v} x=${left + j * (cell + 4)} y="0" width=${cell} height=${cell} fill=${fill[v]}><title>${b.backup_id} on ${n}: ${v}</title></rect>`;
      })}
    </g>`)}
  </svg>`;
}

function NetworksPage() {
  const [data, setData] = useState(null);
  const [recent, setRecent] = useState([]);
  const [error, setError] = useState(null);
  const load = useCallback(() => {
    getJson("/api/networks").then((r) => { setData(r.networks); setError(null); }, (e) => setError(e.message));
    getJson("/api/backups?limit=40").then((r) => setRecent(r.backups), (e) => setError(e.message));
  }, []);
  useEffect(load, [load]);
  const stale = useStale(load, 1000);
  useLive((d) => { if (d.lagged || (d.source === "ledger" && /^(object\.|chunks\.deleted|backup\.)/.test(d.kind))) stale(); });
  if (error) return html`<p class="bad">${error}</p>`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  return html`
    <div class="panel"><h2>Storage per network (as the ledger counts it)</h2>
      <${Bars} rows=${data} value=${(r) => r.bytes} label=${(r) => bytes(r.bytes)} />
    </div>
    <table id="networks">
      <thead><tr><th>network</th><th>kind</th><th>objects</th><th>bytes</th><th>quota</th><th>a month at its price</th></tr></thead>
      <tbody>${data.map((r) => html`<tr data-network=${r.network.name}>
        <td>${r.network.name}</td><td>${r.network.kind}</td><td>${r.objects}</td>
        <td class="bytes" data-bytes=${r.bytes}>${bytes(r.bytes)}</td>
        <td>${r.network.quota_bytes ? `${bytes(r.network.quota_bytes)} (${Math.round((100 * r.bytes) / r.network.quota_bytes)}%)` : ""}</td>
        <td>${r.cost_month == null ? "no price" : r.cost_month.toFixed(4)}</td></tr>`)}</tbody>
    </table>
    <div class="panel"><h2>Which networks hold the newest backups</h2>
      <${Holdings} backups=${recent} networks=${data.map((r) => r.network.name)} />
      <p class="muted">green: verified there; red: missing or damaged there; grey: not verified yet; pale: not a target.</p>
    </div>`;
}

function Ledger() {
  const [data, setData] = useState(null);
  const [letters, setLetters] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(() => {
    getJson("/api/ledger").then(setData, (e) => setError(e.message));
    getJson("/api/deadletters").then((r) => setLetters(r.dead_letters), (e) => setError(e.message));
  }, []);
  useEffect(load, [load]);
  const stale = useStale(load, 1000);
  useLive((d) => { if (d.lagged || (d.source === "ledger" && /^(event\.deadlettered|drill\.)/.test(d.kind))) stale(); });
  if (error) return html`<p class="bad">${error}</p>`;
  if (!data || !letters) return html`<p class="muted">Loading…</p>`;
  const age = data.checkpoint_at ? Math.round(Date.now() / 1000 - data.checkpoint_at) : null;
  return html`
    <div class="panel"><h2>The ledger</h2>
      <p id="ledger-size">${data.entries} entries; ${age == null ? "no signed checkpoint yet" : `newest checkpoint ${age} s old`}</p>
      ${data.checkpoints.length > 0 && html`<table><thead><tr><th>size</th><th>root</th><th>signed</th></tr></thead>
        <tbody>${data.checkpoints.map((c) => html`<tr><td>${c.size}</td><td class="mono">${c.root.slice(0, 16)}…</td><td>${c.issued_at}</td></tr>`)}</tbody></table>`}
    </div>
    <div class="panel"><h2>Drills</h2>
      ${data.drills.length === 0 ? html`<p class="muted">No drill yet.</p>` : html`<table><thead><tr><th>dataset</th><th>latest</th><th>last success</th></tr></thead>
        <tbody>${data.drills.map((d) => html`<tr><td>${d.dataset}</td>
          <td class=${d.latest.ok ? "ok" : "bad"}>${d.latest.ok ? "ok" : "failed"} ${d.latest.finished_at}</td>
          <td>${d.last_success ? d.last_success.finished_at : "never"}</td></tr>`)}</tbody></table>`}
    </div>
    <div class="panel"><h2>Dead letters</h2>
      ${letters.length === 0 ? html`<p class="muted" id="no-dead-letters">None.</p>` : html`<table id="dead-letters"><thead><tr><th>recorded</th><th>stage</th><th>subject</th><th>reason</th></tr></thead>
        <tbody>${letters.map((l) => html`<tr><td>${l.recorded_at}</td><td>${l.stage}</td><td class="mono">${l.subject}</td><td class="bad">${l.reason}</td></tr>`)}</tbody></table>`}
    </div>`;
}

function App() {
  const route = useRoute();
  const on = useConnected();
  const page = route[0] === "backup" && route[1] ? html`<${Backup} id=${route[1]} />`
    : route[0] === "networks" ? html`<${NetworksPage} />`
    : route[0] === "ledger" ? html`<${Ledger} />`
    : html`<${Backups} />`;
  const tab = (name, href, label) => html`<a href=${href} class=${(route[0] || "") === name ? "on" : ""}>${label}</a>`;
  return html`
    <header>
      <h1>Cairn</h1>
      <nav>${tab("", "#/", "Backups")}${tab("networks", "#/networks", "Networks")}${tab("ledger", "#/ledger", "Ledger")}</nav>
      <span class=${"live" + (on ? " on" : "")} id="live">${on ? "live" : "connecting…"}</span>
    </header>
    <main>${page}</main>`;
}

startLive();
const root = document.getElementById("app");
root.textContent = ""; // the "Loading…" shown before this script ran
render(html`<${App} />`, root);
