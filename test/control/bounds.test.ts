// The per-client bounds of the control server, in-process on a real Unix socket:
// at most MAX_IN_FLIGHT requests of one client answered at once, and one reply
// larger than MAX_QUEUED_OUTPUT still delivered whole to a client that reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { MAX_IN_FLIGHT, MAX_QUEUED_OUTPUT, startControlServer } from '../../shim/daemon/control/server.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { tmpdir } from './process.ts';
import { waitFor } from '../helpers/wait.ts';

test('a pipelining client has at most MAX_IN_FLIGHT requests being answered at once; the rest wait, and all are answered', async (t) => {
  const sock = path.join(tmpdir(t), 'c.sock');
  const held: Array<() => void> = [];
  let calls = 0;
  let released = 0;
  let mostAtOnce = 0;
  const server = await startControlServer(sock, {
    slow: () => {
      calls++;
      mostAtOnce = Math.max(mostAtOnce, calls - released);
      return new Promise<string>((resolve) => held.push(() => { released++; resolve('done'); }));
    },
  });
  t.after(() => server.close());
  const total = 5 * MAX_IN_FLIGHT + 3;
  const c = net.connect(sock);
  t.after(() => c.destroy());
  let buf = '';
  const replies = (): number => buf.split('\n').length - 1;
  c.on('data', (d: Buffer) => { buf += d.toString(); });
  c.write(Array.from({ length: total }, (_, i) => JSON.stringify({ id: i, method: 'slow' }) + '\n').join(''));

  await waitFor(() => calls === MAX_IN_FLIGHT, `${MAX_IN_FLIGHT} calls`);
  // Release one answer at a time, oldest first, as soon as the server has started the next.
  while (released < total) {
    await waitFor(() => held.length > 0, `call ${released + 1}`);
    held.shift()!();
  }
  await waitFor(() => replies() === total, 'all replies');
  assert.equal(calls, total);
  assert.equal(mostAtOnce, MAX_IN_FLIGHT, 'never more than MAX_IN_FLIGHT outstanding, and the bound is reached');
  assert.deepEqual(buf.trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id), Array.from({ length: total }, (_, i) => i));
});

test('one reply larger than MAX_QUEUED_OUTPUT reaches a client that reads it', async (t) => {
  const sock = path.join(tmpdir(t), 'c.sock');
  const big = 'x'.repeat(3 * MAX_QUEUED_OUTPUT);
  const server = await startControlServer(sock, { status: () => ({ big }) });
  t.after(() => server.close());
  const r = await controlRequest(sock, 'status', {}, 60_000) as { big: string };
  assert.equal(r.big.length, big.length);
});

test('a reply that keeps arriving is read to its end, however long it takes in all; the deadline is for a reply that does not begin or stalls', async (t) => {
  const sock = path.join(tmpdir(t), 'c.sock');
  // A reply in 20 chunks, 100 ms apart: 2 s in all, twice the client's deadline (as a status of
  // tens of thousands of contexts, megabytes, reaches the CLI in pieces).
  const line = JSON.stringify({ id: 1, ok: true, result: { big: 'y'.repeat(20_000) } }) + '\n';
  const server = net.createServer((c) => {
    c.once('data', () => {
      let i = 0;
      const step = 1000;
      const next = (): void => {
        if (c.destroyed) return;
        const piece = line.slice(i * step, (i + 1) * step);
        if (piece === '') return;
        c.write(piece);
        i++;
        setTimeout(next, 100);
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.after(() => server.close());
  const r = await controlRequest(sock, 'status', {}, 1000) as { big: string };
  assert.equal(r.big.length, 20_000);
  // One that never begins still times out.
  const mute = net.createServer(() => {});
  const sock2 = path.join(tmpdir(t), 'm.sock');
  await new Promise<void>((r2) => mute.listen(sock2, r2));
  t.after(() => mute.close());
  await assert.rejects(controlRequest(sock2, 'status', {}, 300), { code: 'ECONTROL_TIMEOUT' });
});
