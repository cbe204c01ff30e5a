// The backups list: newest first, filtered, kept current by the live feed.
import { useEffect, useState, useRef, useCallback } from "preact/hooks";
import { html, getJson, useLive, Status, bytes } from "./lib.js";

export function Networks({ b }) {
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

export function Backups() {
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

