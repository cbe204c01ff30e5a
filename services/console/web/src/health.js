// Health at a glance: throughput and consumer lag over time, and each
// dataset's newest backup and restore drills, with a drill run on demand.
import { useEffect, useState } from "preact/hooks";
import { html, act, Message, Status, bytes, useLedgerPage, Loading } from "./lib.js";

const W = 640, H = 140, LEFT = 60;

// Times on an axis: to the second when the axis spans minutes.
const clock = (t, span = 3600) => new Date(t * 1000).toISOString().slice(11, span < 600 ? 19 : 16);

// Bytes backed up per span of time (from the ledger: backups finished).
function Throughput({ t }) {
  const now = Math.floor(Date.now() / 1000);
  const from = now - t.window;
  const max = Math.max(1, ...t.finished.map((f) => f.bytes_read));
  const x = (at) => LEFT + ((at - from) / t.window) * (W - LEFT);
  const bw = Math.max(2, (t.bucket / t.window) * (W - LEFT) - 1);
  return html`<svg id="throughput" width=${W} height=${H + 20} role="img" aria-label="bytes backed up over time">
    <text x="0" y="12" class="muted">${bytes(max)}</text>
    <text x="0" y=${H} class="muted">0</text>
    <line x1=${LEFT} y1=${H} x2=${W} y2=${H} stroke="#d0d5dd"></line>
    ${t.finished.map((f) => {
      const h = Math.max(1, (f.bytes_read / max) * (H - 10));
      return html`<rect data-at=${f.at} data-bytes=${f.bytes_read} x=${x(f.at)} y=${H - h} width=${bw} height=${h} fill="#175cd3">
        <title>${clock(f.at)}: ${f.backups} backup(s), ${bytes(f.bytes_read)} read, ${bytes(f.bytes_stored)} stored</title></rect>`;
    })}
    <text x=${LEFT} y=${H + 16} class="muted">${clock(from)}</text>
    <text x=${W - 40} y=${H + 16} class="muted">${clock(now)}</text>
  </svg>`;
}

const COLOURS = ["#175cd3", "#b42318", "#1b7f3b", "#b54708", "#6941c6", "#0e9384", "#c11574", "#475467"];

// Messages each consumer has yet to take, sampled while the console runs.
function Lag({ t }) {
  const points = t.lag.flatMap((s) => s.points);
  if (points.length === 0) return html`<p class="muted" id="lag">No sample yet (every ${t.lag_every} s).</p>`;
  const from = Math.min(...points.map((p) => p[0]));
  const to = Math.max(from + 1, ...points.map((p) => p[0]));
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (at) => LEFT + ((at - from) / (to - from)) * (W - LEFT - 160);
  const y = (v) => H - (v / max) * (H - 10);
  return html`<svg id="lag" width=${W} height=${H + 20} role="img" aria-label="consumer lag over time">
    <text x="0" y="12" class="muted">${max}</text>
    <text x="0" y=${H} class="muted">0</text>
    <line x1=${LEFT} y1=${H} x2=${W - 160} y2=${H} stroke="#d0d5dd"></line>
    ${t.lag.map((s, i) => html`<g data-consumer=${s.consumer} data-max=${Math.max(...s.points.map((p) => p[1]))}>
      <polyline fill="none" stroke=${COLOURS[i % COLOURS.length]} stroke-width="1.5"
        points=${s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}></polyline>
      <text x=${W - 150} y=${14 + i * 14} fill=${COLOURS[i % COLOURS.length]}>${s.consumer}</text></g>`)}
    <text x=${LEFT} y=${H + 16} class="muted">${clock(from, to - from)}</text>
    <text x=${W - 220} y=${H + 16} class="muted">${clock(to, to - from)}</text>
  </svg>`;
}

export function HealthPage() {
  const [t, terr, reloadTrends] = useLedgerPage("/api/trends", /^backup\./);
  // Lag is sampled every few seconds whether or not the ledger moves.
  useEffect(() => {
    const i = setInterval(reloadTrends, 5000);
    return () => clearInterval(i);
  }, [reloadTrends]);
  const [d, derr, reload] = useLedgerPage("/api/datasets", /^(backup\.|drill\.)/);
  const [message, setMessage] = useState(null);
  if (!t || !d) return html`<${Loading} error=${terr || derr} />`;
  const drills = Object.fromEntries(d.drills.map((x) => [x.dataset, x]));
  const drill = (dataset) => async () => {
    setMessage({ text: `drilling ${dataset}: restoring its newest backup into a scratch place…` });
    setMessage(await act(`/api/datasets/${encodeURIComponent(dataset)}/drill`, null, "drilled"));
    reload();
  };
  return html`
    <div class="panel"><h2>Backed up over the last ${Math.round(t.window / 60)} minutes</h2>
      <${Throughput} t=${t} />
      <p class="muted">${t.finished.reduce((a, f) => a + f.backups, 0)} backups finished, ${bytes(t.finished.reduce((a, f) => a + f.bytes_read, 0))} read; bars of ${t.bucket} s.</p>
    </div>
    <div class="panel"><h2>Consumer lag (messages not yet taken)</h2>
      <${Lag} t=${t} />
    </div>
    <div class="panel"><h2>Datasets and restore drills</h2>
      <${Message} m=${message} />
      <table id="datasets"><thead><tr><th>dataset</th><th>backups</th><th>newest</th><th>last completed</th><th>latest drill</th><th>last successful drill</th><th></th></tr></thead>
        <tbody>${d.datasets.map((x) => {
          const dr = drills[x.dataset];
          return html`<tr data-dataset=${x.dataset}>
            <td>${x.dataset}</td><td>${x.backups}</td>
            <td><a class="mono" href=${"#/backup/" + x.newest_id}>${x.newest_at || ""}</a> <${Status} s=${x.newest_status} /></td>
            <td>${x.last_completed_at || html`<span class="bad">never</span>`}</td>
            <td class="drill">${dr ? html`<span class=${dr.latest.ok ? "ok" : "bad"}>${dr.latest.ok ? "ok" : "FAILED"}</span> ${dr.latest.finished_at} by ${dr.latest.by}` : html`<span class="warn">none</span>`}</td>
            <td>${dr && dr.last_success ? dr.last_success.finished_at : "never"}</td>
            <td><button class="run-drill" onClick=${drill(x.dataset)}>Run drill</button></td></tr>`;
        })}</tbody></table>
    </div>`;
}
