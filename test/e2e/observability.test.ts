// Issue 19 on a live lab: A's daemon with `metrics: [::1]:9533` (inside A's
// namespace). While `shim6 pcap --live` captures on A, B's name is looked up
// (context: I1/R1/I2/R2) and a TCP stream runs across the failure of link P
// (Update Requests, probes, a re-homing). Then: /metrics read by a real
// parser moved with the traffic; `shim6 status` has B's block and its --json
// keeps the schema; the status page rendered by headless Chromium has B's card
// (the screenshot is kept under test-artifacts/); tshark with the Lua
// dissector names the captured handshake and Update messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import parse, { type ParsedFamily } from 'parse-prometheus-text-format';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { labDaemonFiles, LAB_STUB } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { BIN, ROOT, shim6 } from '../helpers/cli.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import { schemaProblems } from '../../shim/daemon/status-schema.ts';
import { dissect, DISSECTOR } from '../observability/dissect.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, waitLog } from './fixture.ts';

const METRICS = 'http://[::1]:9533';

/** GET `url` from inside namespace `ns` (the metrics port listens on A's loopback). */
function fetchIn(ns: string, url: string): string {
  const r = nsExec(ns, [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); process.stdout.write(await r.text()); })`], { timeoutMs: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function value(fams: ParsedFamily[], name: string, labels: Record<string, string> = {}): number {
  const f = fams.find((x) => x.name === name);
  assert.ok(f, `${name} is exported`);
  return f.metrics.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v)).reduce((n, s) => n + Number(s.value), 0);
}

test('metrics, status page, status text and JSON, live capture on a lab with traffic and a re-homing', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'tshark', 'chromium'] })) return;
  const lab = await freshLab(t);
  await daemons(t, lab, {}, { metrics: '[::1]:9533' });
  const fa = labDaemonFiles(lab, 'a');
  const dir = mkdtempSync(path.join(tmpdir(), 'observability-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const before = parse(fetchIn(lab.a, `${METRICS}/metrics`));
  assert.equal(value(before, 'shim6_contexts', { state: 'ESTABLISHED' }), 0);

  // The capture runs from before the handshake (the daemon logs when it starts).
  const pcap = path.join(dir, 'live.pcap');
  const cli = spawn(process.execPath, [BIN, 'pcap', '--live', pcap, '--seconds', '600', '--socket', fa.control], { stdio: ['ignore', 'pipe', 'pipe'] });
  let cliOut = '';
  cli.stdout.on('data', (d: Buffer) => { cliOut += d.toString(); });
  cli.stderr.on('data', (d: Buffer) => { cliOut += d.toString(); });
  const cliExit = new Promise<number | null>((resolve) => cli.on('close', (code) => resolve(code)));
  t.after(() => { if (cli.exitCode === null) cli.kill('SIGKILL'); });
  await waitLog(lab, 'a', (r) => r.msg === 'capture started');

  assert.equal(nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']).stdout.trim(), LAB_ADDR.bP);
  await waitLog(lab, 'a', (r) => r.msg === 'context-established');
  const established = parse(fetchIn(lab.a, `${METRICS}/metrics`));
  assert.equal(value(established, 'shim6_contexts', { state: 'ESTABLISHED' }), 1);
  const bytesBefore = value(established, 'shim6_context_sent_bytes_total', { peer: LAB_ADDR.bP });

  // Traffic, and link P goes down halfway: Update Requests, probes, a re-homing.
  const run = await runStream(lab, { durationMs: 4000, rate: 500_000, failAtMs: 1500, failure: 'down', link: 'P' });
  t.diagnostic(`stream: ${run.bytes_verified} octets verified, longest stall ${run.stall_ms} ms`);
  await waitLog(lab, 'a', (r) => r.msg === 'locator-pair-changed');

  // /metrics moved with the traffic.
  const after = parse(fetchIn(lab.a, `${METRICS}/metrics`));
  const sent = value(after, 'shim6_context_sent_bytes_total', { peer: LAB_ADDR.bP });
  assert.ok(sent > bytesBefore + 100_000, `payload octets sent: ${bytesBefore} -> ${sent}`);
  assert.ok(value(after, 'shim6_context_received_packets_total', { peer: LAB_ADDR.bP }) > 0);
  assert.ok(value(after, 'shim6_rehomings_total') >= 1, 'a re-homing counted');
  assert.ok(value(after, 'shim6_control_messages_sent_total', { type: 'UpdateRequest' }) >= 1, 'Update Requests counted');
  assert.ok(value(after, 'shim6_control_messages_sent_total', { type: 'Probe' }) >= 1, 'probes counted');
  assert.ok(value(after, 'shim6_resolver_queries_total') >= 1);
  assert.ok(value(after, 'shim6_dataplane_packets_total', { path: 'tun-in' }) > value(established, 'shim6_dataplane_packets_total', { path: 'tun-in' }));
  const rtt = after.find((f) => f.name === 'shim6_resolver_upstream_rtt_seconds');
  assert.ok(rtt && Number(rtt.metrics[0]?.buckets?.['+Inf']) >= 1, 'upstream round trips in the histogram');

  // shim6 status: B's block, and the JSON keeps the schema.
  const text = shim6(['status', '--socket', fa.control]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`peer: ${LAB_B_NAME.replace(/\./g, '\\.')}\\n {2}ulid: ${LAB_ADDR.bP}\\n {2}state: ESTABLISHED`));
  assert.match(text.stdout, /last re-homing: [\d. a-z]+ ago, [a-z-]+: /);
  assert.match(text.stdout, /last received: [\d. a-z]+ ago/);
  const json = JSON.parse(shim6(['status', '--json', '--socket', fa.control]).stdout) as unknown;
  assert.deepEqual(schemaProblems(json), []);

  // The page in headless Chromium: B's card, caches, upstreams; the screenshot kept.
  const artifacts = path.join(ROOT, 'test-artifacts', 'observability');
  mkdirSync(artifacts, { recursive: true });
  const shot = path.join(artifacts, `status-page-${lab.prefix}.png`);
  // The plot's samples hold the stream's octets, whatever path carried them (on the kernel path, the
  // default, the kernel carried nearly all: the plot used to count only the TUN's, and stayed flat).
  const plotted = (): number => {
    const page = JSON.parse(fetchIn(lab.a, `${METRICS}/status.json`)) as { sampleMs: number; peers: Array<{ history: Array<{ outBps: number }> }> };
    const h = page.peers[0]!.history;
    return h.length < 2 ? 0 : h.reduce((sum, p) => sum + p.outBps * page.sampleMs / 1000, 0);
  };
  await waitFor(() => plotted() >= run.bytes_verified / 2, `the stream's ${run.bytes_verified} octets in the plot's samples`, DEADLINE_MS, 1000)
    .catch((e: Error) => { throw new Error(`${e.message}: ${fetchIn(lab.a, `${METRICS}/status.json`)}`); });
  const chrome = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${path.join(dir, 'chromium')}`, '--window-size=1280,900', '--virtual-time-budget=4000'];
  const s = nsExec(lab.a, ['chromium', ...chrome, `--screenshot=${shot}`, `${METRICS}/`], { timeoutMs: 120_000 });
  assert.equal(s.status, 0, s.stderr);
  assert.ok(statSync(shot).size > 10_000, 'a screenshot with something in it');
  t.diagnostic(`status page screenshot: ${shot}`);
  const dom = nsExec(lab.a, ['chromium', ...chrome, '--dump-dom', `${METRICS}/`], { timeoutMs: 120_000 });
  assert.equal(dom.status, 0, dom.stderr);
  assert.match(dom.stdout, new RegExp(`<section class="card peer" data-ulid="${LAB_ADDR.bP}"><h3>${LAB_B_NAME.replace(/\./g, '\\.')}</h3>`));
  assert.match(dom.stdout, /<svg [^>]*class="plot"[^>]*>.*<polyline [^>]*class="series-in"/s, 'the throughput plot');
  assert.match(dom.stdout, /class="rehome">[^<]* ago, [a-z-]+ \(\d+ in all\)/, 'the last re-homing and its cause');
  assert.match(dom.stdout, /id="answer-cache"/);
  assert.match(dom.stdout, /<table id="upstream-table">/);
  assert.match(dom.stdout, /<span id="stale"><\/span>/, "the refresh from status.json did not fail");

  // The capture: Ctrl-C ends it early and keeps it; tshark with the dissector names the messages.
  cli.kill('SIGINT');
  assert.equal(await cliExit, 0, cliOut);
  assert.match(cliOut, /wrote \d+ packets \(\d+ octets\) to .* \(stopped early\)/);
  const names = new Set(dissect(pcap, ['_ws.col.Info']).map((r) => r[0]));
  for (const n of ['I1', 'R1', 'I2', 'R2', 'Update Request', 'Update Ack', 'Probe']) assert.ok(names.has(n), `${n} captured and decoded: ${[...names].join(', ')}`);
  const check = spawnSync('tshark', ['-r', pcap, '-X', `lua_script:${DISSECTOR}`, '-Y', 'shim6udp.checksum.status != 1 || _ws.malformed'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  assert.equal(check.stdout.trim(), '', 'no bad checksum, nothing malformed');
});
