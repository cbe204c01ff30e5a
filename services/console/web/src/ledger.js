// The ledger: its size, its signed checkpoints and what witnesses have
// cosigned, and the dead letters with their reasons, each of which an
// operator may send again.
import { useEffect, useState } from "preact/hooks";
import { html, act, Message, useLedgerPage, Loading } from "./lib.js";

function Witness({ w, newest }) {
  if (w.error) return html`<p class="bad" id="witness">the broker did not say: ${w.error}</p>`;
  if (w.count === 0) return html`<p class="warn" id="witness">No witness has cosigned a checkpoint: an auditor has only the log's own word (set [audit] witness_key_file on a verify service).</p>`;
  const top = w.newest[0];
  const behind = newest ? newest.size - top.size : 0;
  return html`<div id="witness">
    <p>${w.count} checkpoint(s) cosigned; the newest covers <b data-size=${top.size}>${top.size}</b> entries${newest ? html`, <span class=${behind > 0 ? "warn" : "ok"}>${behind > 0 ? `${behind} behind the newest signed checkpoint` : "up to the newest signed checkpoint"}</span>` : ""}.</p>
    <table><thead><tr><th>size</th><th>signed by</th></tr></thead>
      <tbody>${w.newest.map((c) => html`<tr><td>${c.size}</td><td class="signers">${c.signers.join(", ")}</td></tr>`)}</tbody></table>
  </div>`;
}

export function Ledger() {
  const [data, error, reloadLedger] = useLedgerPage("/api/ledger", /^event\.deadlettered/);
  // Checkpoints and cosignatures are not ledger entries: look every 5 s.
  useEffect(() => {
    const i = setInterval(reloadLedger, 5000);
    return () => clearInterval(i);
  }, [reloadLedger]);
  const [letters, lerror, reload] = useLedgerPage("/api/deadletters", /^(event\.deadlettered|operator\.action)/);
  const [message, setMessage] = useState(null);
  if (!data || !letters) return html`<${Loading} error=${error || lerror} />`;
  const age = data.checkpoint_at ? Math.round(Date.now() / 1000 - data.checkpoint_at) : null;
  const retry = (seq) => async () => {
    setMessage({ text: "sending it again…" });
    setMessage(await act(`/api/deadletters/${seq}/retry`, null, "sent again"));
    reload();
  };
  const list = letters.dead_letters;
  return html`
    <div class="panel"><h2>The ledger</h2>
      <p id="ledger-size">${data.entries} entries; ${age == null ? "no signed checkpoint yet" : `newest checkpoint ${age} s old`}</p>
      ${data.checkpoints.length > 0 && html`<table id="checkpoints"><thead><tr><th>size</th><th>root</th><th>signed</th></tr></thead>
        <tbody>${data.checkpoints.map((c) => html`<tr><td>${c.size}</td><td class="mono">${c.root.slice(0, 16)}…</td><td>${c.issued_at}</td></tr>`)}</tbody></table>`}
    </div>
    <div class="panel"><h2>Witnesses</h2>
      <${Witness} w=${data.witness} newest=${data.checkpoints[0]} />
    </div>
    <div class="panel"><h2>Dead letters</h2>
      <${Message} m=${message} />
      ${list.length === 0 ? html`<p class="muted" id="no-dead-letters">None.</p>` : html`<table id="dead-letters"><thead><tr><th>recorded</th><th>stage</th><th>subject</th><th>reason</th><th></th></tr></thead>
        <tbody>${list.map((l) => html`<tr data-seq=${l.seq}><td>${l.recorded_at}</td><td>${l.stage}</td><td class="mono">${l.subject}</td><td class="bad">${l.reason}</td>
          <td><button class="retry" onClick=${retry(l.seq)}>Retry</button>
            ${l.retried.map((r) => html`<div class="muted retried">retried by ${r.operator} ${r.at}${r.outcome === "ok" ? "" : `: ${r.outcome}`}</div>`)}</td></tr>`)}</tbody></table>`}
    </div>`;
}
