// Cairn's ops console: one page, hash-routed, fed live by the server's
// event stream (/api/events, server-sent events from the EVENTS and AUDIT
// streams). Read-only but for actions, which need an operator token
// (kept in this tab's sessionStorage only).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html, startLive, useConnected, token, setToken } from "./lib.js";
import { Backups } from "./backups.js";
import { Backup } from "./backup.js";
import { HealthPage } from "./health.js";
import { Schedules, Retention, Compliance } from "./plans.js";
import { NetworksPage } from "./networks.js";
import { Ledger } from "./ledger.js";
import "./style.css";

function useRoute() {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const f = () => setHash(location.hash || "#/");
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return hash.slice(1).split("/").filter(Boolean);
}

const PAGES = [
  ["", "Backups"],
  ["health", "Health"],
  ["schedules", "Schedules"],
  ["retention", "Retention"],
  ["compliance", "Compliance"],
  ["networks", "Networks"],
  ["ledger", "Ledger"],
];

function Token() {
  const [t, setT] = useState(token());
  return html`<input id="token" type="password" placeholder="operator token" autocomplete="off" value=${t}
    onInput=${(e) => { setT(e.target.value); setToken(e.target.value); }} />`;
}

function App() {
  const route = useRoute();
  const on = useConnected();
  const r = route[0] || "";
  const page = r === "backup" && route[1] ? html`<${Backup} id=${route[1]} />`
    : r === "health" ? html`<${HealthPage} />`
    : r === "schedules" ? html`<${Schedules} />`
    : r === "retention" ? html`<${Retention} />`
    : r === "compliance" ? html`<${Compliance} />`
    : r === "networks" ? html`<${NetworksPage} />`
    : r === "ledger" ? html`<${Ledger} />`
    : html`<${Backups} />`;
  return html`
    <header>
      <h1>Cairn</h1>
      <nav>${PAGES.map(([name, label]) => html`<a href=${"#/" + name} class=${r === name ? "on" : ""}>${label}</a>`)}</nav>
      <${Token} />
      <span class=${"live" + (on ? " on" : "")} id="live">${on ? "live" : "connecting…"}</span>
    </header>
    <main>${page}</main>`;
}

startLive();
const root = document.getElementById("app");
root.textContent = ""; // the "Loading…" shown before this script ran
render(html`<${App} />`, root);
