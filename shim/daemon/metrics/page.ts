/**
 * The status page at `/` of the metrics port: one card per peer (name, ULID,
 * state, current locator pair, verified/probed locators, last received, last
 * re-homing and why, throughput over the last minutes as an inline SVG plot),
 * then the caches and the upstreams' health. Self-contained (inline CSS and
 * script, no external asset); the first view is in the page itself, then it
 * refreshes from `/status.json` on the same port. `pageData` builds that JSON
 * from a status snapshot and the throughput history.
 */
import { peerViews, type PeerView, type StatusReply } from '../status-view.ts';
import { hostPort } from '../../log.ts';
import type { RatePoint, ThroughputHistory } from './history.ts';

/** Cards on the page at most; the rest are counted (`morePeers`). */
export const MAX_CARDS = 64;

export interface PageData {
  generatedAt: string;
  refreshMs: number;
  sampleMs: number;
  daemon: { pid: number | null; uptimeSeconds: number | null; tun: string | null; locators: Array<{ address: string; up: boolean }>; drops: Record<string, number> } | null;
  peers: Array<PeerView & { history: RatePoint[] }>;
  morePeers: number;
  contexts: Record<string, number>;
  engineCaches: { positive: number; negative: number } | null;
  resolver: {
    listen: string[];
    queries: number; hits: number; misses: number; servfail: number;
    cache: { entries: number; bytes: number; maxEntries: number; maxBytes: number } | null;
    capability: { positive: number; negative: number };
    upstreams: Array<{ upstream: string; up: boolean; rttMs: number; sent: number; answered: number; timeouts: number }>;
  } | null;
}

export function pageData(s: StatusReply, history: ThroughputHistory | undefined, refreshMs: number): PageData {
  const views = peerViews(s);
  const contexts: Record<string, number> = {};
  for (const c of s.engine?.contexts ?? []) contexts[c.state] = (contexts[c.state] ?? 0) + 1;
  const r = s.resolver;
  const c = r?.counters ?? {};
  return {
    generatedAt: new Date().toISOString(),
    refreshMs,
    sampleMs: history?.intervalMs ?? 0,
    daemon: s.daemon ? {
      pid: s.daemon.pid ?? null, uptimeSeconds: s.daemon.uptimeSeconds ?? null, tun: s.daemon.tun ?? null,
      locators: (s.daemon.locators ?? []).map((l) => ({ address: l.address, up: l.up !== false })), drops: s.daemon.stats?.drops ?? {},
    } : null,
    peers: views.slice(0, MAX_CARDS).map((p) => ({ ...p, history: history?.of(p.ulid) ?? [] })),
    morePeers: Math.max(0, views.length - MAX_CARDS),
    contexts,
    engineCaches: s.engine?.caches ?? null,
    resolver: r ? {
      listen: (r.listen ?? []).map((a) => hostPort(a.host, a.port)),
      queries: c.queries ?? 0, hits: c.hits ?? 0, misses: c.misses ?? 0, servfail: c.servfail ?? 0,
      cache: r.cache ? { entries: r.cache.entries, bytes: r.cache.bytes, maxEntries: r.cache.maxEntries, maxBytes: r.cache.maxBytes } : null,
      capability: { positive: r.capability?.positive.length ?? 0, negative: r.capability?.negative.length ?? 0 },
      upstreams: (r.upstreams ?? []).map((u) => ({ upstream: hostPort(u.host, u.port), up: !u.down, rttMs: u.rttMs, sent: u.sent, answered: u.answered, timeouts: u.timeouts })),
    } : null,
  };
}

/** JSON safe inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** The whole page, with `initial` as its first view. */
export function pageHtml(initial: PageData): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shim6 status</title>
<style>
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --fg: #1b1f24; --muted: #5d6773; --line: #d8dde3; --ok: #1a7f37; --warn: #b35900; --bad: #c62828; --in: #1f6feb; --out: #d4620b; }
@media (prefers-color-scheme: dark) { :root { --bg: #0f1216; --card: #181c22; --fg: #e6e9ed; --muted: #97a1ad; --line: #2c333b; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.25rem; margin: 0; }
header .meta { color: var(--muted); }
#stale { color: var(--bad); font-weight: 600; }
main { padding: 1rem 1.5rem 2rem; }
h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1rem; }
.card h3 { margin: 0 0 .15rem; font-size: 1.05rem; overflow-wrap: anywhere; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-all; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .75rem; margin: .6rem 0; }
dt { color: var(--muted); }
dd { margin: 0; }
ul.locs { list-style: none; margin: 0; padding: 0; }
svg.plot { width: 100%; height: 64px; display: block; }
.legend { font-size: 12px; color: var(--muted); }
.legend .in { color: var(--in); } .legend .out { color: var(--out); }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: .35rem .75rem; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header>
  <h1>shim6</h1>
  <span class="meta" id="summary"></span>
  <span class="meta" id="updated"></span>
  <span id="stale"></span>
</header>
<main>
  <h2>Peers</h2>
  <div class="grid" id="peers"></div>
  <h2>Caches</h2>
  <div class="grid" id="caches"></div>
  <h2>Upstreams</h2>
  <div id="upstreams"></div>
</main>
<script id="initial" type="application/json">${scriptJson(initial)}</script>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};
const dur = (ms) => {
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = Math.floor(ms / 1000); if (s < 60) return s + " s";
  const m = Math.floor(s / 60); if (m < 60) return m + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
  const h = Math.floor(m / 60); return h + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
};
const ago = (ms) => ms === null || ms === undefined ? "never" : dur(ms) + " ago";
const bytes = (n) => { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(2) : n) + " " + u[i]; };
const rate = (bps) => bytes(bps) + "/s";
const pair = (p) => p.local + " \\u2192 " + p.peer;
const SVG = "http://www.w3.org/2000/svg";
function plot(history) {
  const w = 320, h = 60, svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("class", "plot");
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...history.map((p) => Math.max(p.inBps, p.outBps)));
  svg.setAttribute("aria-label", "throughput, peak " + rate(max));
  const base = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, stroke: "currentColor", "stroke-opacity": "0.25" })) base.setAttribute(k, v);
  svg.append(base);
  if (history.length >= 2) {
    const t0 = history[0].t, span = Math.max(1, history[history.length - 1].t - t0);
    for (const [key, color] of [["inBps", "var(--in)"], ["outBps", "var(--out)"]]) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", history.map((p) => ((p.t - t0) / span * w).toFixed(1) + "," + (h - 2 - p[key] / max * (h - 6)).toFixed(1)).join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", color);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("class", key === "inBps" ? "series-in" : "series-out");
      svg.append(line);
    }
  }
  return svg;
}
function stateClass(p) { return p.state === "ESTABLISHED" ? (p.reap === "Operational" ? "ok" : "warn") : p.state === "E-FAILED" || p.state === "NO-SUPPORT" ? "bad" : "warn"; }
function card(p) {
  const last = p.history.length ? p.history[p.history.length - 1] : null;
  const locs = el("ul", { class: "locs" }, ...p.locators.map((l) => el("li", { class: "mono" }, l.address, " ",
    el("span", { class: l.verified ? "ok" : "muted" }, l.verified ? "verified" : "unverified"), ", ",
    el("span", { class: l.probed ? "ok" : "muted" }, l.probed ? "probed" : "not probed"), l.current ? " (current)" : "")));
  const rh = p.lastRehome;
  return el("section", { class: "card peer", "data-ulid": p.ulid },
    el("h3", {}, p.name || "(no name)"),
    el("div", { class: "mono muted" }, p.ulid),
    el("dl", {},
      el("dt", {}, "state"), el("dd", {}, el("span", { class: "badge " + stateClass(p) }, p.state), " REAP " + p.reap),
      el("dt", {}, "current pair"), el("dd", { class: "mono pair" }, pair(p.pair)),
      el("dt", {}, "locators"), el("dd", {}, locs),
      el("dt", {}, "last received"), el("dd", {}, ago(p.lastReceivedAgoMs)),
      el("dt", {}, "transfer"), el("dd", {}, bytes(p.traffic.bytesIn) + " in, " + bytes(p.traffic.bytesOut) + " out"),
      el("dt", {}, "last re-homing"), el("dd", { class: "rehome" }, rh ? ago(rh.agoMs) + ", " + rh.cause + " (" + p.rehomings + " in all)" : "none")),
    plot(p.history),
    el("div", { class: "legend" }, el("span", { class: "in" }, "\\u25A0 in"), " ", el("span", { class: "out" }, "\\u25A0 out"),
      last ? "  now " + rate(last.inBps) + " in, " + rate(last.outBps) + " out; peak " + rate(Math.max(0, ...p.history.map((x) => Math.max(x.inBps, x.outBps)))) + " over " + dur(p.history[p.history.length - 1].t - p.history[0].t) : "  (no samples yet)"));
}
function render(d) {
  const ctx = Object.entries(d.contexts).map(([k, n]) => n + " " + k).join(", ") || "no contexts";
  $("summary").textContent = (d.daemon ? (d.daemon.tun === null ? "no TUN" : "TUN " + d.daemon.tun) + ", pid " + d.daemon.pid + ", up " + dur((d.daemon.uptimeSeconds || 0) * 1000) + "; " : "") + ctx;
  $("updated").textContent = "updated " + new Date(d.generatedAt).toLocaleTimeString();
  const peers = $("peers");
  peers.replaceChildren(...d.peers.map(card));
  if (d.peers.length === 0) peers.append(el("p", { class: "empty" }, "No peer has a context."));
  if (d.morePeers > 0) peers.append(el("p", { class: "muted" }, "and " + d.morePeers + " more (shim6 status lists them all)"));
  const caches = [];
  if (d.resolver) {
    const r = d.resolver;
    caches.push(el("section", { class: "card cache", id: "answer-cache" }, el("h3", {}, "Answer cache"),
      el("dl", {}, el("dt", {}, "entries"), el("dd", {}, r.cache ? r.cache.entries + " of " + r.cache.maxEntries : "-"),
        el("dt", {}, "size"), el("dd", {}, r.cache ? bytes(r.cache.bytes) + " of " + bytes(r.cache.maxBytes) : "-"),
        el("dt", {}, "queries"), el("dd", {}, r.queries + " (" + r.hits + " hits, " + r.misses + " misses, " + r.servfail + " SERVFAIL)"),
        el("dt", {}, "listening"), el("dd", { class: "mono" }, r.listen.join(", ")))));
    caches.push(el("section", { class: "card cache", id: "resolver-capability" }, el("h3", {}, "Capability records (resolver, by name)"),
      el("dl", {}, el("dt", {}, "shim6 peers"), el("dd", {}, r.capability.positive), el("dt", {}, "without shim6"), el("dd", {}, r.capability.negative))));
  }
  if (d.engineCaches) caches.push(el("section", { class: "card cache", id: "engine-capability" }, el("h3", {}, "Capability caches (engine)"),
    el("dl", {}, el("dt", {}, "positive, by ULID"), el("dd", {}, d.engineCaches.positive), el("dt", {}, "negative, by address"), el("dd", {}, d.engineCaches.negative))));
  $("caches").replaceChildren(...caches);
  const ups = d.resolver ? d.resolver.upstreams : [];
  $("upstreams").replaceChildren(ups.length ? el("table", { id: "upstream-table" },
    el("tr", {}, ...["upstream", "health", "smoothed RTT", "sent", "answered", "timed out"].map((h) => el("th", {}, h))),
    ...ups.map((u) => el("tr", { class: "upstream" }, el("td", { class: "mono" }, u.upstream), el("td", {}, el("span", { class: "badge " + (u.up ? "ok" : "bad") }, u.up ? "up" : "held down")),
      el("td", {}, u.rttMs ? u.rttMs + " ms" : "-"), el("td", {}, u.sent), el("td", {}, u.answered), el("td", {}, u.timeouts))))
    : el("p", { class: "empty" }, "No resolver upstreams."));
}
let data = JSON.parse($("initial").textContent);
render(data);
async function refresh() {
  try {
    const r = await fetch("status.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    data = await r.json();
    render(data);
    $("stale").textContent = "";
  } catch (e) {
    $("stale").textContent = "not updating: " + e.message;
  }
  setTimeout(refresh, data.refreshMs || 2000);
}
setTimeout(refresh, data.refreshMs || 2000);
</script>
</body>
</html>
`;
}
