// The per-client bounds of the control server, in-process on a real Unix socket:
// at most MAX_IN_FLIGHT requests of one client answered at once, one reply
// larger than MAX_QUEUED_OUTPUT still delivered whole to a client that reads, and
// request lines over MAX_LINE octets refused (ELINE) and never run. And the
// client's side: a reply that is not what the protocol says is ECONTROL_PROTOCOL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { MAX_IN_FLIGHT, MAX_LINE, MAX_QUEUED_OUTPUT, startControlServer } from '../../shim/daemon/control/server.ts';
import { ControlError, controlRequest } from '../../shim/daemon/control/client.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from './process.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';

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

/**
 * A raw client of `sock`: what it has read, and whether the connection is closed. Half-open: it
 * keeps writing after the server's end (and sees the close only when a write fails).
 */
function client(sock: string, allowHalfOpen = false): { c: net.Socket; got: () => string; closed: () => boolean } {
  const c = net.connect({ path: sock, allowHalfOpen });
  c.on('error', () => {});
  let got = '';
  let closed = false;
  c.setEncoding('utf8');
  c.on('data', (d: string) => { got += d; });
  c.on('close', () => { closed = true; });
  return { c, got: () => got, closed: () => closed };
}

/** A `touch` request line of exactly `octets` octets (without its newline), padded with `ch`. */
function touchLine(octets: number, ch = 'x'): string {
  const head = '{"method":"touch","pad":"';
  const pad = octets - head.length - 2;
  const n = Math.floor(pad / Buffer.byteLength(ch));
  return head + ch.repeat(n) + 'x'.repeat(pad - n * Buffer.byteLength(ch)) + '"}';
}

test('a request line over MAX_LINE octets is refused (ELINE) and never run, the connection closed; one of exactly MAX_LINE octets runs', async (t) => {
  const sock = path.join(tmpdir(t), 'c.sock');
  let calls = 0;
  const server = await startControlServer(sock, { touch: () => { calls++; return 'touched'; } });
  t.after(() => server.close());
  const exact = client(sock);
  t.after(() => exact.c.destroy());
  assert.equal(Buffer.byteLength(touchLine(MAX_LINE)), MAX_LINE);
  exact.c.write(touchLine(MAX_LINE) + '\n');
  await waitFor(() => exact.got().includes('\n'), 'the reply to a MAX_LINE-octet line');
  assert.match(exact.got(), /"ok":true,"result":"touched"/);
  assert.equal(calls, 1);
  // Sent whole (the newline in the same write as the rest, so that however the reads split it, the
  // server sees the line complete before its unterminated part is over the limit), and with
  // characters of two octets: the limit counts octets, not characters.
  for (const line of [touchLine(MAX_LINE + 1), touchLine(MAX_LINE + 50_000), touchLine(MAX_LINE + 2, '\u00e9')]) {
    const cl = client(sock);
    t.after(() => cl.c.destroy());
    cl.c.write(line + '\n' + JSON.stringify({ method: 'touch' }) + '\n');
    await waitFor(() => cl.got().includes('\n'), 'a reply');
    assert.match(cl.got(), /^\{"id":null,"ok":false,"error":\{"code":"ELINE"/, `${Buffer.byteLength(line)} octets: ${cl.got().slice(0, 80)}`);
    await waitFor(() => cl.closed(), 'the server closing the connection');
    assert.equal(cl.got().split('\n').length, 2, 'one reply: ELINE, and nothing after it is run');
  }
  assert.equal(calls, 1, 'no oversized line (nor the one after it) was run');
});

test('after ELINE for an unterminated line the server reads nothing more: the rest of the line, its newline, and the next request are never run', async (t) => {
  const sock = path.join(tmpdir(t), 'c.sock');
  let calls = 0;
  const server = await startControlServer(sock, { touch: () => { calls++; return 'touched'; } });
  t.after(() => server.close());
  const cl = client(sock, true);
  t.after(() => cl.c.destroy());
  cl.c.write(touchLine(MAX_LINE + 5000).slice(0, -2));
  await waitFor(() => cl.got().includes('ELINE'), 'the ELINE reply');
  cl.c.write('"}\n' + JSON.stringify({ method: 'touch' }) + '\n');
  // Until the server runs them (the bug) or is gone (closed: it no longer reads).
  await waitFor(() => calls > 0 || cl.closed(), 'the lines run or the connection closed');
  assert.equal(calls, 0, 'a line sent after ELINE was run');
});

test('a reply line that is JSON but not an object (null, a number, a string, an array) is ECONTROL_PROTOCOL', async (t) => {
  for (const line of ['null', '5', '"ok"', '[]', 'true']) {
    const sock = path.join(tmpdir(t), 'odd.sock');
    const odd = net.createServer((c) => { c.on('error', () => {}); c.once('data', () => c.write(line + '\n')); });
    await new Promise<void>((r) => odd.listen(sock, r));
    await assert.rejects(controlRequest(sock, 'status', {}, DEADLINE_MS), (e: unknown) => e instanceof ControlError && e.code === 'ECONTROL_PROTOCOL', line);
    await new Promise<void>((r) => odd.close(() => r()));
  }
});

test('a reply that streams without end (something else on the socket) is refused at the client\'s bound, not read for as long as it streams', async (t) => {
  const sock = path.join(tmpdir(t), 'flood.sock');
  const chunk = 'x'.repeat(1 << 20);
  let sent = 0;
  const flood = net.createServer((c) => {
    c.on('error', () => {});
    const next = (): void => {
      if (c.destroyed) return;
      sent++;
      if (c.write(chunk)) setImmediate(next); else c.once('drain', next);
    };
    c.once('data', next);
  });
  await new Promise<void>((r) => flood.listen(sock, r));
  t.after(() => flood.close());
  const bound = 8 * (1 << 20);
  const giveUp = new AbortController();
  const outcome = await Promise.race([
    controlRequest(sock, 'status', {}, DEADLINE_MS, bound).then(() => 'a reply', (e: unknown) => e),
    sleep(DEADLINE_MS, 'still reading', { signal: giveUp.signal }).catch(() => 'aborted'),
  ]);
  giveUp.abort();
  assert.ok(outcome instanceof ControlError && outcome.code === 'ECONTROL_PROTOCOL' && /reply longer than/.test(outcome.message), `outcome: ${String(outcome)} after ${sent} MiB`);
});
