// What Cairn will do and how it stands: the schedules with their next and
// last runs, the retention plan (keep or drop, and the rule that decided),
// and every backup's compliance verdicts.
import { useState } from "preact/hooks";
import { html, Status, useLedgerPage, Loading } from "./lib.js";

export function Schedules() {
  const [d, error] = useLedgerPage("/api/schedules", /^(schedule\.|backup\.(requested|completed|failed|degraded))/);
  if (!d) return html`<${Loading} error=${error} />`;
  if (d.schedules.length === 0) return html`<p class="muted" id="no-schedules">No schedule: add one to [[schedules]] or with <code>cairn schedule add</code>.</p>`;
  return html`<div class="panel"><h2>Schedules</h2>
    <table id="schedules"><thead><tr><th>dataset</th><th>cron</th><th>zone</th><th>next run</th><th>from</th><th>last run</th></tr></thead>
      <tbody>${d.schedules.map((s) => html`<tr data-dataset=${s.dataset}>
        <td>${s.dataset}</td><td class="mono">${s.cron}</td><td>${s.timezone || "UTC"}</td>
        <td class="next">${s.next_run || ""}</td>
        <td>${s.origin === "config" ? "configuration" : `added by ${s.added_by}`}</td>
        <td>${s.last_run ? html`<a data-backup=${s.last_run.backup_id} href=${"#/backup/" + s.last_run.backup_id}>${s.last_run.requested_at}</a> <${Status} s=${s.last_run.status} />` : html`<span class="muted">never</span>`}</td></tr>`)}</tbody></table>
  </div>`;
}

// Decisions drawn per dataset before "show all": every drop is drawn.
const SHOWN = 50;

export function Retention() {
  const [d, error] = useLedgerPage("/api/retention", /^(backup\.|forget\.)/);
  const [all, setAll] = useState({});
  if (!d) return html`<${Loading} error=${error} />`;
  if (d.datasets.length === 0) return html`<p class="muted">No backup to plan for.</p>`;
  return html`${d.datasets.map((p) => {
    const dropped = p.decisions.filter((x) => !x.keep).length;
    const shown = all[p.dataset] ? p.decisions : p.decisions.filter((x, i) => i < SHOWN || !x.keep);
    const hidden = p.decisions.length - shown.length;
    return html`<div class="panel" data-dataset=${p.dataset}><h2>${p.dataset} <span class="muted">(${p.policy_name}): keep ${p.decisions.length - dropped}, drop ${dropped}</span></h2>
      <table class="plan"><thead><tr><th></th><th>backup</th><th>taken</th><th>status</th><th>why</th></tr></thead>
        <tbody>${shown.map((x) => html`<tr data-backup=${x.backup_id} data-keep=${x.keep ? "keep" : "drop"}>
          <td class=${x.keep ? "ok" : "bad"}>${x.keep ? "keep" : "drop"}</td>
          <td><a class="mono" href=${"#/backup/" + x.backup_id}>${x.backup_id}</a></td>
          <td>${x.time}</td><td>${x.status}</td><td class="why">${x.reasons.join("; ")}</td></tr>`)}</tbody></table>
      ${hidden > 0 && html`<button class="show-all" onClick=${() => setAll({ ...all, [p.dataset]: true })}>Show ${hidden} more kept</button>`}
    </div>`;
  })}<p class="muted">Nothing is deleted here: <code>cairn retention apply</code> forgets what the plan drops, <code>cairn gc</code> frees the chunks.</p>`;
}

export function Compliance() {
  const [d, error] = useLedgerPage("/api/compliance", /^(backup\.(completed|degraded|failed|held|released|locked|migrated|forgotten)|drill\.)/, 10000);
  if (!d) return html`<${Loading} error=${error || "Judging every backup…"} />`;
  const t = d.tally;
  return html`<div class="panel"><h2>Compliance</h2>
    <p id="tally">${t.backups} backup(s) held to a profile: <span class="ok">${t.passed} passed</span>, <span class=${t.failed ? "bad" : "muted"}>${t.failed} failed</span>, ${t.not_applicable} not applicable; judged as at ${d.as_of}</p>
    ${d.backups.length === 0 ? html`<p class="muted">No backup is held to a compliance profile ([datasets.NAME] profiles, or a tag's).</p>` : html`
    <table id="compliance"><thead><tr><th>backup</th><th>dataset</th><th>profiles</th><th>verdicts</th><th>failed rules</th></tr></thead>
      <tbody>${d.backups.map((b) => {
        const failed = b.findings.filter((f) => f.verdict === "fail");
        const passed = b.findings.filter((f) => f.verdict === "pass").length;
        return html`<tr data-backup=${b.backup_id} data-failed=${failed.length}>
          <td><a class="mono" href=${"#/backup/" + b.backup_id}>${b.backup_id}</a></td>
          <td>${b.dataset}</td><td>${b.profiles.join(", ")}</td>
          <td><span class="ok">${passed} pass</span>${failed.length ? html`, <span class="bad">${failed.length} fail</span>` : ""}</td>
          <td>${failed.map((f) => html`<div class="bad" title=${f.detail}>${f.profile}/${f.rule} (${f.control}): ${f.detail}</div>`)}</td></tr>`;
      })}</tbody></table>`}
    <p class="muted">The proofs behind each verdict: a backup's page (Open evidence), or <code>cairn compliance check --all --json</code>.</p>
  </div>`;
}
