// The lab on real namespaces: up builds A, B and DNS with links P and Q and a
// real Knot serving B's capability record; a checksummed TCP stream runs A→B;
// a silent black hole of P stops plain TCP (the baseline shim6 must beat);
// down leaves the host as it was, and is idempotent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { labFor, listNamespaces, nsExec, LAB_ADDR, blackhole, unblackhole } from '../../lab/topology.ts';
import { labDown, labUp } from '../../lab/lab.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

const lab = labFor(`e2e${process.pid.toString(36).slice(-5)}`);

test('lab up / stream / black hole / down', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const hostLabLinks = (): string => spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\d+: lab/.test(l)).join('\n');
  const linksBefore = hostLabLinks();
  t.after(() => labDown(lab));
  const { recordSource } = await labUp(lab);
  assert.equal(recordSource, 'zone-tools', 'B\'s record line comes from the zone tools with B\'s HBA parameters');
  for (const ns of [lab.a, lab.b, lab.dns]) assert.ok(listNamespaces().includes(ns), ns);
  // Nothing new in the host namespace: every interface lives in a lab namespace.
  assert.equal(hostLabLinks(), linksBefore);

  // Knot answers from A: the AAAA of B and B's capability record (TYPE65300, 2 locators).
  const aaaa = nsExec(lab.a, ['kdig', `@${LAB_ADDR.dnsA}`, LAB_B_NAME, 'AAAA', '+short']).stdout.trim();
  assert.equal(aaaa, LAB_ADDR.bP);
  const cap = nsExec(lab.a, ['kdig', `@${LAB_ADDR.dnsA}`, LAB_B_NAME, 'TYPE65300', '+short']).stdout.trim();
  assert.match(cap, /^\\# \d+ 01/, cap);
  const hex = (a: string): string => Buffer.from(parseIpv6(a)).toString('hex');
  const rdata = cap.replace(/^\\# \d+/, '').replace(/\s/g, '').toLowerCase();
  assert.ok(rdata.includes(hex(LAB_ADDR.bQ)), 'B\'s Q locator is in the record');
  assert.equal(rdata.slice(8, 40), hex(LAB_ADDR.bP), 'the ULID is B\'s P address');

  // Both links work, and a black hole of P cuts B's P address off while Q still works.
  // A reachable address answers at once (RST); one that is not stays silent until `ms`.
  const tcpReach = (addr: string, ms = DEADLINE_MS): string => nsExec(lab.a, [process.execPath, '-e',
    `const s=require('net').connect({host:'${addr}',port:9});setTimeout(()=>{console.log('timeout');process.exit()},${ms});` +
    `s.on('connect',()=>{console.log('ok');process.exit()});s.on('error',e=>{console.log(e.code);process.exit()})`], { timeoutMs: ms + 10_000 }).stdout.trim();
  assert.equal(tcpReach(LAB_ADDR.bP), 'ECONNREFUSED');
  assert.equal(tcpReach(LAB_ADDR.bQ), 'ECONNREFUSED');
  blackhole(lab, 'P');
  assert.equal(tcpReach(LAB_ADDR.bP, 800), 'timeout');
  assert.equal(tcpReach(LAB_ADDR.bQ), 'ECONNREFUSED');
  unblackhole(lab, 'P');
  assert.equal(tcpReach(LAB_ADDR.bP), 'ECONNREFUSED');

  // A stream by name, resolved through the lab's DNS; P black-holed mid-stream:
  // plain TCP to B's P address does not recover, and what arrived is intact.
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_ADDR.dnsA, durationMs: 2500, failAtMs: 1000, failure: 'blackhole', rate: 2_500_000, graceMs: 1000 });
  assert.ok(r.failAt !== undefined);
  t.diagnostic(`stall ${r.stall_ms} ms`);
  assert.equal(r.recovered, false);
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_verified > 1_000_000 && r.bytes_verified <= r.bytes_sent, `${r.bytes_verified} of ${r.bytes_sent}`);

  assert.equal(labDown(lab), true);
  assert.equal(labDown(lab), false, 'down is idempotent');
  for (const ns of [lab.a, lab.b, lab.dns]) assert.ok(!listNamespaces().includes(ns), ns);
  assert.equal(hostLabLinks(), linksBefore);
  assert.equal(existsSync(lab.stateDir), false);
});
