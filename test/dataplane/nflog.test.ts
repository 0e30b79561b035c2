// The addon's NFLOG reader (native/nflog.c: discovery's new flows, the kernel path's tripwire) when
// its netlink socket overflows: a daemon busy for a moment (a long reading, a loaded host) while
// the kernel logs faster than the socket holds. The kernel then drops messages, sets the socket's
// error (ENOBUFS) and reports POLLERR, on which libuv stops the poll and calls back with an error.
// The reader must count the loss and go on reading; before, it returned on that call and never read
// again: no new flow was discovered, and the kernel path's clock, asleep, never woke on traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';
import { spawnSync } from 'node:child_process';
import { buildNativeHarness } from '../helpers/native-harness.ts';

test('NFLOG reader: after its socket overflowed (ENOBUFS) it counts the loss and reads what the kernel logs next', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('nfl');
  const GROUP = 5599;
  net.run(ns, ['nft', '-f', '-'], { input: `table ip6 nfltest {\n chain o {\n  type filter hook output priority 0; policy accept;\n  udp dport 9 log group ${GROUP}\n }\n}\n` });
  const sender = `
    const s = require('node:dgram').createSocket('udp6');
    let n = 0;
    const next = () => { if (n++ === 2000) return s.close(); s.send(Buffer.alloc(8), 9, '::1', next); };
    next();
  `;
  const script = `
    import { spawnSync } from 'node:child_process';
    import { createSocket } from 'node:dgram';
    const { loadAddon } = await import(${JSON.stringify(treeModule('native/addon.ts'))});
    const addon = loadAddon();
    const fd = addon.nflogOpen(${GROUP}, 4096); // the smallest buffer: a few messages fill it
    const out = { records: 0, lost: 0, recordsAfterLoss: 0 };
    const h = addon.nflogStartReader(fd, new ArrayBuffer(34 * 256), 256, (count, lost) => {
      if (out.lost > 0) out.recordsAfterLoss += count;
      out.records += count;
      out.lost += lost;
    });
    // The loop blocked while the kernel logs 2,000 datagrams: the socket overflows.
    const r = spawnSync(process.execPath, ['-e', ${JSON.stringify(sender)}], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error('sender: ' + r.stderr);
    // Then one datagram at a time, until the reader reports records after the loss (or the deadline).
    const s = createSocket('udp6');
    const until = Date.now() + ${DEADLINE_MS};
    while (out.recordsAfterLoss === 0 && Date.now() < until) {
      await new Promise((ok) => s.send(Buffer.alloc(8), 9, '::1', ok));
      await new Promise((ok) => setTimeout(ok, 50));
    }
    s.close();
    addon.nflogClose(h);
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { records: number; lost: number; recordsAfterLoss: number };
  t.diagnostic(`records ${res.records}, losses reported ${res.lost}, records after the loss ${res.recordsAfterLoss}`);
  assert.ok(res.lost > 0, 'the overflow is reported as a loss');
  assert.ok(res.recordsAfterLoss > 0, 'records come again after the overflow');
});

test('NFLOG set-up: a datagram queued before a request\'s acknowledgment, one message of a length not a multiple of 4 (sent by another netlink socket), is walked within the receive buffer (AddressSanitizer)', (t) => {
  if (!needs(t, { root: true, commands: ['unshare'] })) return;
  const bin = buildNativeHarness(t, 'test/dataplane/fixtures/nflog-config-ack.c');
  if (bin === undefined) return;
  // A network namespace of its own: the log group bound there is no one else's.
  const r = spawnSync('unshare', ['-n', bin, '5599'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^rc 0$/m, 'the request\'s own acknowledgment was found after the junk');
});
