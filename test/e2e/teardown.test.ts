// E2E 5 (issue 6): coordinated teardown. SIGTERM to A's daemon sends Close,
// B answers Close Ack; A's routes, rules, TUN and control socket are gone
// afterwards, the caches are saved, and a new daemon imports them. Also: the
// control socket is mode 0600 and SIGHUP reloads the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { labDaemonFiles, LAB_STUB, LAB_TUN } from '../../lab/daemons.ts';
import { shim6 } from '../helpers/cli.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog } from './fixture.ts';

test('Close / Close Ack on stop; routes, rules and TUN gone; caches kept across restart', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  const fa = labDaemonFiles(lab, 'a');
  const before = nsExec(lab.a, ['ip', '-6', 'rule', 'show']).stdout;
  assert.equal(nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']).stdout.trim(), LAB_ADDR.bP);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established');
  assert.equal(statSync(fa.control).mode & 0o777, 0o600);

  // shim6 status, human and JSON, through the control socket.
  const human = shim6(['status', '--socket', fa.control]);
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /contexts: 1/);
  const json = JSON.parse(shim6(['status', '--socket', fa.control, '--json']).stdout) as { daemon: { routed: string[]; dataPath?: string }; engine: { contexts: Array<{ peerUlid: string; path?: string }> } };
  // B's ULID is routed into the TUN exactly when its context's packets take the TUN: always on the
  // TUN path; on the kernel path only while REAP explores (the kernel's own route otherwise).
  const path = json.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)?.path;
  const kernelPath = json.daemon.dataPath === 'kernel';
  assert.deepEqual(json.daemon.routed, !kernelPath || path === 'tun' ? [LAB_ADDR.bP] : []);
  if (kernelPath) assert.ok(path === 'kernel' || path === 'tun', `path ${path}`);
  // shim6 flush empties the daemon's resolver caches (B's answer and record were in them); the context stays.
  const flush = shim6(['flush', '--socket', fa.control, '--json']);
  assert.equal(flush.status, 0, flush.stderr);
  const flushed = JSON.parse(flush.stdout) as { resolver: { answers: number; capability: number; threads: number } };
  assert.ok(flushed.resolver.answers >= 1 && flushed.resolver.capability >= 1 && flushed.resolver.threads >= 1, flush.stdout);
  assert.match(shim6(['status', '--socket', fa.control]).stdout, /contexts: 1/, 'the engine keeps its context');

  // SIGHUP: a changed config is re-read (here: a configured peer).
  const cfg = JSON.parse(readFileSync(fa.config, 'utf8')) as Record<string, unknown>;
  writeFileSync(fa.config, JSON.stringify({ ...cfg, peers: [{ ulid: '2001:db8:99::1' }] }));
  const pid = Number(spawnSync('ip', ['netns', 'pids', lab.a], { encoding: 'utf8' }).stdout.split(/\s+/).find((p) => p && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('daemon')));
  process.kill(pid, 'SIGHUP');
  await waitLog(lab, 'a', (x) => x.msg === 'reloaded' && x.peers === 1);
  // An invalid file on reload is rejected and the daemon keeps running.
  writeFileSync(fa.config, JSON.stringify({ ...cfg, port: 'five' }));
  process.kill(pid, 'SIGHUP');
  await waitLog(lab, 'a', (x) => x.msg === 'reload: config rejected, keeping the running one');
  assert.equal(shim6(['status', '--socket', fa.control]).status, 0, 'still answering');
  writeFileSync(fa.config, JSON.stringify(cfg));

  // Stop A only: B stays up, so A's Close meets a running peer (stopping both at
  // once would cross two Closes and neither side would see the other's).
  await s.stopHost('a');
  const closed = log(lab, 'a').find((x) => x.msg === 'contexts closed');
  assert.ok(closed, 'A closed its contexts');
  assert.equal(closed.left, 0, 'every Close was acknowledged');
  assert.ok(log(lab, 'b').some((x) => x.msg === 'context-closed' && x.reason === 'peer-close'), 'B saw the Close');
  assert.notEqual(nsExec(lab.a, ['ip', 'link', 'show', LAB_TUN], { check: false }).status, 0, 'TUN gone');
  assert.equal(nsExec(lab.a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim(), '');
  assert.doesNotMatch(nsExec(lab.a, ['ip', '-6', 'rule', 'show']).stdout, /553[23]:/);
  // The kernel path leaves nothing either: its nftables table, the tc programs on the links.
  assert.notEqual(nsExec(lab.a, ['nft', 'list', 'table', 'ip6', 'shim6_kernel'], { check: false }).status, 0, 'no kernel-path table');
  for (const dev of JSON.parse(nsExec(lab.a, ['ip', '-j', 'link', 'show']).stdout) as Array<{ ifname: string }>) {
    for (const dir of ['egress', 'ingress']) assert.doesNotMatch(nsExec(lab.a, ['tc', 'filter', 'show', 'dev', dev.ifname, dir], { check: false }).stdout, /shim6_/, `no tc program on ${dev.ifname} ${dir}`);
  }
  assert.match(before, /5532:/, 'the rules were there while running');
  assert.equal(existsSync(fa.control), false, 'control socket removed');
  const caches = JSON.parse(readFileSync(fa.cache, 'utf8')) as { positive: Array<{ ulid: string }> };
  assert.ok(caches.positive.some((p) => p.ulid === LAB_ADDR.bP), 'B is in the saved positive cache');

  // A new daemon on A imports them.
  await s.start('a');
  await waitLog(lab, 'a', (x) => x.msg === 'daemon ready' && x.cachesImported === true);
});
