// Storage per network, as the ledger counts it, and which networks hold
// which backups.
import { useEffect, useState, useCallback } from "preact/hooks";
import { html, getJson, useLive, useStale, bytes } from "./lib.js";

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

export function NetworksPage() {
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

