// The resolver on several threads (resolver/workers.ts): worker threads sharing one SO_REUSEPORT UDP
// listener, spread by question name by the addon's BPF program. Real Knot upstream, real dig, a Node
// client sending from many source ports, every answer checked against its question.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { needs, skipOrFail } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { Logger } from '../../shim/log.ts';
import { configFromObject, resolveConfig } from '../../resolver/config.ts';
import { nativeUdpStatus, openDnsUdp } from '../../resolver/udp-socket.ts';
import { ResolverGroup, shardConfig } from '../../resolver/workers.ts';
import { dig, digAnswers, digStatus, RecordingSink, until } from './harness.ts';
import { PEER, zoneText, ZONE } from './zone.ts';
import { waitFor } from '../helpers/wait.ts';
import type { Worker } from 'node:worker_threads';

const WORKERS = 3;

async function setup(t: TestContext, config: Record<string, unknown> = {}): Promise<{ group: ResolverGroup; sink: RecordingSink; port: number; logs: string[] } | undefined> {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return undefined;
  if (!(await nativeUdpStatus()).available) { skipOrFail(t, 'the native UDP addon is not built (npm install builds it)'); return undefined; }
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() + '*.many IN AAAA 2001:db8:77::1\n' }] });
  t.after(() => auth.stop());
  const sink = new RecordingSink();
  const logs: string[] = [];
  const cfg = resolveConfig(configFromObject({ upstreams: [`127.0.0.1:${auth.port}`], listen: ['127.0.0.1:0'], workers: WORKERS, ...config }), {});
  const group = await ResolverGroup.start(cfg, { sink, log: new Logger({ level: 'info', sink: { write: (l) => { logs.push(l); } } }) });
  t.after(() => group.close());
  return { group, sink, port: group.addresses[0]!.port, logs };
}

/** Send each name's AAAA question from one of `ports` client sockets; resolve with every answer by ID. */
async function ask(port: number, names: string[], sockets: number): Promise<Map<number, dnsPacket.Packet>> {
  const socks = await Promise.all(Array.from({ length: sockets }, () => new Promise<dgram.Socket>((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => resolve(s));
  })));
  const answers = new Map<number, dnsPacket.Packet>();
  for (const s of socks) s.on('message', (m) => { const p = dnsPacket.decode(m); answers.set(p.id!, p); });
  names.forEach((name, i) => socks[i % sockets]!.send(dnsPacket.encode({ type: 'query', id: i + 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'AAAA', name }] }), port, '127.0.0.1'));
  await until(() => answers.size === names.length);
  for (const s of socks) s.close();
  return answers;
}

test(`${WORKERS} threads: names spread over all of them, every answer for its own question, a name always reaches the same thread's cache`, async (t) => {
  const s = await setup(t);
  if (!s) return;
  const N = 600;
  const names = Array.from({ length: N }, (_, i) => `w${i}.many.example`);
  const first = await ask(s.port, names, 8);
  assert.equal(first.size, N, 'every question answered');
  for (const [id, p] of first) {
    assert.equal(p.questions![0]!.name, names[id - 1], `answer ${id} is for its own question`);
    assert.deepEqual(p.answers!.map((a) => (a as { data?: unknown }).data), ['2001:db8:77::1']);
  }
  let st = await s.group.status();
  assert.equal(st.workers?.count, WORKERS);
  assert.equal(st.counters.queries, N);
  assert.equal(st.counters.misses, N);
  for (const [i, q] of st.workers!.queries.entries()) assert.ok(q > N / WORKERS / 2, `thread ${i} took ${q} of ${N} names (${st.workers!.queries.join(', ')})`);

  // The same names again from other source ports, in other letter case (RFC 4343): every one a cache hit,
  // because the name, not the client's port, picks the thread.
  const again = await ask(s.port, names.map((n) => n.toUpperCase()), 5);
  assert.equal(again.size, N);
  st = await s.group.status();
  assert.equal(st.counters.hits, N, `hits ${st.counters.hits}, misses ${st.counters.misses}`);
  assert.equal(st.counters.misses, N);
  // The configured bounds hold for all threads together.
  assert.equal(st.cache.maxEntries, shardConfig(s.group.main.config, 1).cache.maxEntries * WORKERS);
});

test(`${WORKERS} threads: a capability record found on any thread primes the main thread's sink once per lifetime, CNAME aliases included`, async (t) => {
  const s = await setup(t);
  if (!s) return;
  const threadOf = async (name: string): Promise<number> => {
    const before = (await s.group.status()).workers!.queries;
    const r = await dig({ host: '127.0.0.1', port: s.port }, name, 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR');
    const after = (await s.group.status()).workers!.queries;
    return after.findIndex((q, i) => q > before[i]!);
  };
  const peerThread = await threadOf(PEER.name);
  await until(() => s.sink.calls.length > 0);
  const primes = () => s.sink.calls.filter((c) => c.kind === 'prime');
  assert.equal(primes().length, 1);
  // The record crossed the thread boundary whole.
  assert.equal(primes()[0]!.ulid, PEER.ulid);
  assert.deepEqual(primes()[0]!.record?.locators.map((l) => l.address), PEER.locators);
  // An alias that another thread serves (it fetches the final name's record itself) leads to the same peer: no second prime.
  const a = await dig({ host: '127.0.0.1', port: s.port }, 'alias.example.', 'AAAA');
  assert.deepEqual(digAnswers(a.stdout).map((x) => x[3]), ['CNAME', 'CNAME', 'AAAA', 'AAAA']);
  assert.notEqual(await threadOf('alias.example.'), peerThread, 'the alias is served by another thread than its target');
  for (let i = 0; i < 5; i++) await dig({ host: '127.0.0.1', port: s.port }, PEER.name, 'AAAA');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(primes().length, 1, JSON.stringify(s.sink.calls.map((c) => c.name)));
  // No record: absent() with the answered addresses, from whichever thread.
  await dig({ host: '127.0.0.1', port: s.port }, 'plain.example.', 'AAAA');
  await until(() => s.sink.calls.some((c) => c.kind === 'absent'));
  assert.deepEqual(s.sink.calls.find((c) => c.kind === 'absent')?.addresses, ['2001:db8:3::1']);
  const st = await s.group.status();
  assert.equal(st.counters.primes >= 1, true);
  assert.ok(st.capability.positive.length >= 1, 'status lists the positive entry of the thread that holds it');
});

test(`${WORKERS} threads: TCP is served (main thread), status adds the threads up, close ends every thread and frees the port`, async (t) => {
  const s = await setup(t);
  if (!s) return;
  const r = await dig({ host: '127.0.0.1', port: s.port }, '+tcp', PEER.name, 'AAAA');
  assert.equal(digStatus(r.stdout), 'NOERROR');
  const st = await s.group.status();
  assert.equal(st.counters.tcpQueries, 1);
  assert.equal(st.workers?.restarts, 0);
  assert.match(s.logs.join('\n'), new RegExp(`resolver threads workers=${WORKERS}`));
  await s.group.close();
  // Every socket of the group is closed: a socket of its own (no SO_REUSEPORT) may bind the port again.
  const again = await openDnsUdp({ host: '127.0.0.1', port: s.port, bufferSize: 0, maxDatagram: 512, batch: 1 }, 'native');
  again.close();
});

/** Worker thread `index` (1..WORKERS-1) of the group, as it runs now. */
function thread(group: ResolverGroup, index: number): Worker {
  const w = (group as unknown as { shards: Array<{ worker?: Worker }> }).shards[index - 1]?.worker;
  assert.ok(w, `thread ${index} is running`);
  return w;
}

/**
 * After thread `index` ended: the main thread logs it and starts it again (docs/resolver.md "Threads"),
 * every name is answered meanwhile (its share by the other sockets) and afterwards, and the new thread
 * takes its share again (its own query count, which starts at 0, grows).
 */
async function restartedAndAnswering(s: { group: ResolverGroup; port: number; logs: string[] }, index: number): Promise<void> {
  await waitFor(() => s.logs.some((l) => l.includes(`resolver thread exited, restarting it shard=${index} code=1 afterMs=1000`)), `thread ${index}'s exit logged`);
  const meanwhile = Array.from({ length: 90 }, (_, i) => `m${i}.many.example`);
  assert.equal((await ask(s.port, meanwhile, 4)).size, meanwhile.length, 'every name answered while the thread is down');
  let round = 0;
  await waitFor(async () => {
    const names = Array.from({ length: 60 }, (_, i) => `r${round}-${i}.many.example`);
    round++;
    assert.equal((await ask(s.port, names, 4)).size, names.length, 'every name answered');
    const st = await s.group.status();
    return st.workers?.count === WORKERS && (st.workers.queries[index] ?? 0) > 0;
  }, `thread ${index} restarted and answering its share`, undefined, 200);
  const st = await s.group.status();
  assert.equal(st.workers?.restarts, 1);
  assert.equal(digStatus((await dig({ host: '127.0.0.1', port: s.port }, '+tcp', PEER.name, 'AAAA')).stdout), 'NOERROR', 'the main thread answers');
}

test(`${WORKERS} threads: a worker thread that throws (an uncaught exception) is logged, its resolver closed, and started again; the process lives on and every name is answered`, async (t) => {
  const s = await setup(t);
  if (!s) return;
  // The thread's own log goes to its stderr, which Node pipes into this process's.
  const stderr: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderr.push(String(chunk));
    return (write as (...a: unknown[]) => boolean).call(process.stderr, chunk, ...rest);
  }) as typeof process.stderr.write;
  t.after(() => { process.stderr.write = write; });
  const names = Array.from({ length: 90 }, (_, i) => `a${i}.many.example`);
  assert.equal((await ask(s.port, names, 4)).size, names.length);
  // Any bug that throws on the thread: here its message handler reads `t` of a null message.
  thread(s.group, 1).postMessage(null);
  await restartedAndAnswering(s, 1);
  // The thread logged the failure with its stack before closing its resolver; the main thread logged it too.
  assert.match(stderr.join(''), /shim6\[1\]: resolver thread failed, closing it shard=1 kind=uncaughtException error="Cannot read properties of null \(reading 't'\)" stack="TypeError/);
  assert.match(s.logs.join('\n'), /resolver thread failed shard=1 error="Cannot read properties of null \(reading 't'\)"/);
});

test(`${WORKERS} threads: a worker thread terminate()d with its UDP sockets open (close()'s last resort) ends without aborting the process, and is started again`, async (t) => {
  const s = await setup(t);
  if (!s) return;
  const names = Array.from({ length: 90 }, (_, i) => `a${i}.many.example`);
  assert.equal((await ask(s.port, names, 4)).size, names.length);
  // Its native readers (uv_poll handles) are still open: the addon closes them as the thread's
  // environment ends, or Node aborts the whole process ("uv_loop_close() while having open handles").
  await thread(s.group, 2).terminate();
  await restartedAndAnswering(s, 2);
});

test('workers: bad values name the key; more than one needs the native backend', () => {
  for (const bad of [0, 65, 1.5, 'two']) {
    assert.throws(() => configFromObject({ workers: bad }), (e: unknown) => (e as { field?: string }).field === 'workers' && /workers: invalid value/.test((e as Error).message), String(bad));
  }
  assert.throws(() => configFromObject({ workers: 2, udp: 'dgram' }), /workers: invalid value 2: more than one worker needs the native UDP backend/);
  assert.equal(configFromObject({}).workers, 1);
  assert.equal(configFromObject({ workers: 4 }).workers, 4);
});
