// One backup: its details, its way through the stages, its health on each
// network, its evidence, and what an operator may do to it (repair, hold,
// release).
import { useEffect, useState, useCallback } from "preact/hooks";
import { html, getJson, useLive, useStale, act, Message, Status, bytes, Loading } from "./lib.js";
import { Networks } from "./backups.js";

function HealthReport({ r }) {
  return html`<div id="health-report">
    <p>health: <span class=${"status " + (r.status === "healthy" ? "completed" : r.status === "degraded" ? "degraded" : "failed")} data-health=${r.status}>${r.status}</span></p>
    <table><thead><tr><th>network</th><th>state</th><th>missing</th><th>corrupt</th><th>latency</th><th>est. restore</th></tr></thead>
      <tbody>${r.networks.map((n) => html`<tr data-network=${n.network}>
        <td>${n.network}</td>
        <td class=${n.ok ? "ok" : "bad"}>${n.ok ? "ok" : n.reachable ? "incomplete" : "unreachable"}</td>
        <td>${n.missing}</td><td>${n.corrupt}</td><td>${n.latency_ms} ms</td>
        <td>${n.est_restore_secs == null ? "" : `${n.est_restore_secs} s`}</td></tr>`)}</tbody></table>
    ${r.integrity && html`<p class="muted">${r.integrity.chunks_sampled} chunks sampled, ${r.integrity.inclusion_proofs_verified} inclusion proofs verified; sealed root ${r.integrity.sealed_root_matches_digests ? "matches" : "DOES NOT MATCH"}</p>`}
    ${(r.recommendations || []).map((x) => html`<p class="warn">→ ${x}</p>`)}
  </div>`;
}

export function Backup({ id }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [evidence, setEvidence] = useState(null);
  const [health, setHealth] = useState(null);
  const [reason, setReason] = useState("");
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
  const checkHealth = () => {
    setHealth({ loading: true });
    getJson(`/api/backups/${id}/health`).then((r) => setHealth({ report: r }), (e) => setHealth({ error: e.message }));
  };
  const action = (what, done, body) => async () => {
    setMessage({ text: `${what}…` });
    setMessage(await act(`/api/backups/${id}/${what}`, body, done));
    load();
  };

  if (!data) return html`<${Loading} error=${error} />`;
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
        <tr><th>legal hold</th><td id="hold">${data.hold ? html`<span class="warn">held: ${data.hold.reason} (by ${data.hold.held_by}, ${data.hold.held_at})</span>` : html`<span class="muted">none</span>`}</td></tr>
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
      <h2>Health, evidence and actions</h2>
      <div class="actions">
        <button id="check-health" onClick=${checkHealth}>Check health</button>
        <button id="evidence" onClick=${openEvidence}>Open evidence</button>
        <button id="repair" onClick=${action("repair", "repaired")}>Repair</button>
      </div>
      <div class="actions">
        <input id="hold-reason" placeholder="reason (case number, request)" value=${reason} onInput=${(e) => setReason(e.target.value)} />
        <button id="hold-button" onClick=${action("hold", "held", { reason })}>Hold</button>
        <button id="release-button" onClick=${action("release", "released", { reason })}>Release</button>
      </div>
      <${Message} m=${message} />
      ${health && (health.loading ? html`<p class="muted">Reading a sample from every network…</p>`
        : health.error ? html`<p class="bad" id="health-report">${health.error}</p>`
        : html`<${HealthReport} r=${health.report} />`)}
      ${evidence && (evidence.loading ? html`<p class="muted">Judging…</p>`
        : evidence.error ? html`<p class="bad" id="evidence-doc">${evidence.error}</p>`
        : html`<div id="evidence-doc">
            <p>${evidence.doc.tally ? `${evidence.doc.tally.passed} passed, ${evidence.doc.tally.failed} failed, ${evidence.doc.tally.not_applicable ?? 0} n/a` : ""}
            ${evidence.doc.checkpoint ? html` · checkpoint of size ${evidence.doc.checkpoint.size}` : ""}</p>
            <pre>${JSON.stringify(evidence.doc, null, 2)}</pre></div>`)}
    </div>`;
}
