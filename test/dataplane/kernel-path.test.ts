// The kernel path's tc programs in a real namespace (shim/dataplane/kernel-path.ts): built with clang,
// loaded with bpftool, attached with tc; per-context counters read through the addon; nothing left
// behind on close; what a SIGKILLed owner left behind is removed by the next open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/kernel-path-node.ts');
const A = 'fd00:5533:1::a', B = 'fd00:5533:1::b';

test('kernel path: tc programs count a context\'s packets both ways (not the daemon\'s UDP), and leave nothing behind, even after a SIGKILL', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', 'nft', 'clang', 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const a = net.ns('kpa'), b = net.ns('kpb');
  net.veth(a, 'kp0', b, 'kp1');
  net.addr(a, 'kp0', `${A}/64`);
  net.addr(b, 'kp1', `${B}/64`);
  // B answers the SYN with an RST but sends no port-unreachable for the datagrams (rate-limited, so not countable).
  net.run(b, ['nft', 'add table ip6 kp; add chain ip6 kp out { type filter hook output priority 0; }; add rule ip6 kp out icmpv6 type destination-unreachable drop']);
  const run = (extra: Record<string, unknown> = {}) => {
    const r = net.tryRun(a, [process.execPath, '--import', 'tsx', FIXTURE, JSON.stringify({ dev: 'kp0', local: A, peer: B, ...extra })], { timeoutMs: 60_000 });
    return { ...r, json: r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  };
  const filters = () => ['egress', 'ingress'].map((d) => net.run(a, ['tc', 'filter', 'show', 'dev', 'kp0', d]).stdout).join('');
  const crashed = run({ crash: true });
  assert.deepEqual(crashed.json, [{ op: 'opened' }], crashed.stderr);
  assert.match(filters(), /shim6_egress[\s\S]*shim6_ingress/, 'a killed owner leaves its filters attached');
  const r = run();
  assert.equal(r.json.length, 1, r.stderr);
  assert.deepEqual(r.json[0], { op: 'done', watched: true, out: 6, in: 1, afterUnwatch: true },
    '5 UDP datagrams and a SYN out, the RST in; the 3 datagrams to port 5533 not counted');
  assert.equal(filters(), '', 'close removed the filters (and the stale ones were gone before)');
  assert.doesNotMatch(net.run(a, ['tc', 'qdisc', 'show', 'dev', 'kp0']).stdout, /clsact/, 'and the clsact qdisc it added');
});
