// `npm start` as a user other than root (scripts/start.mjs): the stub resolver on loopback. It
// listened on 127.0.0.1:5353, mDNS's port, which avahi-daemon holds (0.0.0.0:5353) on most desktop
// hosts: there the start ended at once with EUDPBIND and `the resolver stopped (exit 1)`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { ROOT } from '../helpers/cli.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { requireBuilt, track, waitFor } from './built.ts';

test('npm start as a user: the stub comes up beside an mDNS responder on 0.0.0.0:5353 and says where it listens', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'setpriv', 'ip'] })) return;
  requireBuilt();
  // A network namespace of its own: avahi's socket (SO_REUSEADDR, as avahi binds it), then
  // scripts/start.mjs as user nobody. The checkout may be under /root, which nobody cannot read:
  // nobody keeps CAP_DAC_READ_SEARCH (ambient), and nothing else of root's.
  // The script starts once the holder has bound (it makes a file then; up to 60 s on a busy machine), not after a fixed wait.
  const bound = path.join(tmpdir(t), 'mdns-bound');
  const holder = `const d = require("dgram").createSocket({ type: "udp4", reuseAddr: true }); d.bind(5353, "0.0.0.0", () => { console.log("mdns bound"); require("fs").writeFileSync(${JSON.stringify(bound)}, ""); })`;
  const sh = 'set -e; ip link set lo up; "$1" -e "$2" & shift 2; i=0; until [ -e "$BOUND" ]; do i=$((i + 1)); [ $i -le 600 ] || { echo "the mDNS holder did not bind"; exit 1; }; sleep 0.1; done; exec "$@"';
  const p = track(t, spawn('unshare', ['-n', 'sh', '-c', sh, 'sh', process.execPath, holder,
    'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search',
    process.execPath, path.join(ROOT, 'scripts/start.mjs')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, HOME: '/nonexistent', BOUND: bound } }));
  t.after(() => { try { process.kill(-p.child.pid!, 'SIGKILL'); } catch { /* gone */ } });
  await waitFor(() => p.out().includes('resolver ready') || p.status() !== undefined || /resolver stopped/.test(p.out()), 'the resolver ready or stopped');
  assert.match(p.out(), /mdns bound/);
  assert.match(p.out(), /resolver ready/, p.out());
  const said = /npm start: stub resolver on 127\.0\.0\.1:(\d+) \(try: dig @127\.0\.0\.1 -p (\d+) /.exec(p.out());
  assert.ok(said, p.out());
  assert.notEqual(said[1], '5353');
  assert.equal(said[2], said[1]);
  assert.match(p.out(), new RegExp(`listening address=127\\.0\\.0\\.1 port=${said[1]} `), 'where it said');
  // Ctrl-C: the terminal signals the whole process group. The resolver stops, and the script after it.
  process.kill(-p.child.pid!, 'SIGINT');
  assert.equal(await p.exited(), 0, p.out());
  const dir = /control socket (\/\S+)\/control\.sock/.exec(p.out())?.[1];
  assert.ok(dir !== undefined && !existsSync(dir), `its temporary directory ${dir} removed`);
});
