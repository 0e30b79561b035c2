// `shim6 lab up` on a shared machine, through the real CLI: any prefix of 1–8
// lowercase letters or digits; a running lab is never replaced unless
// --replace (up and demo refuse, exit 1, and the lab goes on as it was); the
// hosts resolve through their stub via /etc/netns/<ns>/resolv.conf, so
// `ip netns exec <ns> curl http://b.lab.example/` reaches B's web server by
// name (through the shim6 daemons); `lab down` removes those files too.
// Missing peer tools are named (ETOOL), never a failed exec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { waitFor } from '../helpers/wait.ts';
import { shim6, shim6Async } from '../helpers/cli.ts';
import { labFor, listNamespaces, LAB_ADDR, NETNS_ETC } from '../../lab/topology.ts';
import { labDown } from '../../lab/lab.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { UsageError } from '../../shim/errors.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'named-checkzone', 'curl'] };
/** 8 characters, this process's own: no other test or person uses it. */
const prefix = `u${process.pid.toString(36).slice(-6).padStart(6, '0')}x`.slice(0, 8);

const pids = (ns: string): string => spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean).sort().join(' ');
/** Seconds since boot (/proc/uptime), the clock of a process's start time in /proc/<pid>/stat. */
const uptime = (): number => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
/** The pids of `ns` whose process started by `bootSeconds` (clock ticks of 10 ms: USER_HZ on Linux). */
const startedBy = (ns: string, bootSeconds: number): string => pids(ns).split(' ').filter((p) => {
  try {
    return Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]) / 100 <= bootSeconds;
  } catch {
    return false; // gone already: a short-lived child
  }
}).join(' ');

test('lab up: curl by name from A reaches B through its stub; a second up or a demo of the same prefix is refused and the lab is untouched; down removes /etc/netns files', { timeout: 300_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = labFor(prefix);
  t.after(() => { labDown(lab); });
  const up = shim6(['lab', 'up', '--prefix', prefix], { timeout: 200_000 });
  const upDone = uptime();
  assert.equal(up.status, 0, up.stdout + up.stderr);
  assert.match(up.stdout, new RegExp(`ip netns exec ${lab.a} curl http://b\\.lab\\.example/`));
  const rc = readFileSync(path.join(NETNS_ETC, lab.a, 'resolv.conf'), 'utf8');
  assert.match(rc, /^nameserver 127\.0\.0\.53$/m, 'A resolves through its stub first');
  const curl = spawnSync('ip', ['netns', 'exec', lab.a, 'curl', '-sS', '--max-time', '20', 'http://b.lab.example/'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(curl.status, 0, curl.stderr);
  assert.equal(curl.stdout.trim().split(';')[0], `hello from B at [${LAB_ADDR.bP}]:80`, 'by name, to B\'s ULID');
  // A's stub answered the lookup and primed the engine: the name went through shim6's resolver.
  const status = shim6(['status', '--json', '--socket', labDaemonFiles(lab, 'a').control]);
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /b\.lab\.example/, 'A\'s stub saw the name');

  // The lab's processes: those started by `lab up` (a daemon's short-lived child, an `ip` or `ss`,
  // may be running at any moment after it and gone the next).
  const before = [lab.a, lab.b, lab.dns].map((ns) => startedBy(ns, upDone));
  before.forEach((b, i) => assert.notEqual(b, '', `the lab's processes in ${[lab.a, lab.b, lab.dns][i]}`));
  const [again, demo] = await Promise.all([
    shim6Async(['lab', 'up', '--prefix', prefix]),
    shim6Async(['lab', 'demo', '--prefix', prefix, '--mode', 'tcp']),
  ]);
  for (const r of [again, demo]) {
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`ELAB_RUNNING: a lab with prefix "${prefix}" is running .*--replace`));
  }
  // Untouched: every process of the lab still there, and no other to stay (short-lived children
  // may come and go meanwhile).
  const now = [lab.a, lab.b, lab.dns].map(pids);
  before.forEach((b, i) => assert.ok(b.split(' ').every((p) => now[i]!.split(' ').includes(p)), `the running lab's processes are untouched: ${b} then ${now[i]}`));
  await waitFor(() => [lab.a, lab.b, lab.dns].map(pids).join('|') === before.join('|'), 'no new process in the running lab');
  const still = spawnSync('ip', ['netns', 'exec', lab.a, 'curl', '-sS', '--max-time', '20', 'http://b.lab.example/'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(still.status, 0, `the lab still works: ${still.stderr}`);

  const down = shim6(['lab', 'down', '--prefix', prefix], { timeout: 120_000 });
  assert.equal(down.status, 0, down.stderr);
  for (const ns of [lab.a, lab.b, lab.dns]) {
    assert.ok(!listNamespaces().includes(ns), `${ns} removed`);
    assert.ok(!existsSync(path.join(NETNS_ETC, ns)), `/etc/netns/${ns} removed`);
  }
});

test('lab prefixes: 1 to 8 lowercase letters or digits', () => {
  for (const ok of ['a', '7', 'lab', 'e2e12345', 'abcdefgh']) assert.equal(labFor(ok).a, `${ok}a`);
  for (const bad of ['', 'Lab', 'abcdefghi', 'a-b', 'a b', 'ab/']) {
    assert.throws(() => labFor(bad), (e: unknown) => e instanceof UsageError && /1 to 8 lowercase letters or digits/.test(e.message), bad);
  }
});

test('lab demo --mode mptcp without mptcpize names the tool and its package (ETOOL), building nothing', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'named-checkzone'] })) return;
  // A PATH with every lab tool but mptcpize.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lab-tools-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  for (const c of ['ip', 'nft', 'knotd', 'kdig', 'named-checkzone']) {
    const where = spawnSync('sh', ['-c', `command -v ${c} || echo /usr/sbin/${c}`], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(where, path.join(bin, c));
  }
  const p = `m${process.pid.toString(36).slice(-6)}`;
  const r = shim6(['lab', 'demo', '--prefix', p, '--mode', 'mptcp'], { env: { ...process.env, PATH: bin } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /ETOOL: lab demo --mode mptcp needs mptcpize, not installed here: apt-get install mptcpize/);
  assert.ok(!listNamespaces().includes(`${p}a`), 'no lab was built');
});
