// The shared deadline queue behind the capability wait budget: real timers, real event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { DeadlineQueue, type Deadlined } from '../../resolver/deadline-queue.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

interface Item extends Deadlined { name: string; expiredAt?: number }

function queue(): { q: DeadlineQueue<Item>; expired: Item[] } {
  const expired: Item[] = [];
  const q = new DeadlineQueue<Item>(() => performance.now(), (it) => { it.expiredAt = performance.now(); expired.push(it); });
  return { q, expired };
}

const waitFor = async (cond: () => boolean, ms = DEADLINE_MS): Promise<void> => {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 1));
  }
};

test('a sub-millisecond deadline (checked per loop turn, no timer) expires, never before its deadline', async (t) => {
  const { q, expired } = queue();
  t.after(() => q.clear());
  const start = performance.now();
  const it: Item = { name: 'short', deadline: start + 0.2, done: false };
  q.add(it);
  await waitFor(() => expired.length === 1);
  assert.ok(it.expiredAt! >= it.deadline, 'never before the deadline');
  assert.equal(q.size, 0);
});

test('items done before their deadline are never expired; longer deadlines share one timer and keep order', async (t) => {
  const { q, expired } = queue();
  t.after(() => q.clear());
  const now = performance.now();
  const done: Item = { name: 'done', deadline: now + 5, done: false };
  const late: Item = { name: 'late', deadline: now + 30, done: false };
  const early: Item = { name: 'early', deadline: now + 10, done: false };
  const short: Item = { name: 'short', deadline: now + 0.3, done: false };
  q.add(done); q.add(late); q.add(early); q.add(short);
  done.done = true;
  await waitFor(() => expired.length === 3);
  assert.deepEqual(expired.map((x) => x.name), ['short', 'early', 'late']);
  for (const x of expired) assert.ok(x.expiredAt! >= x.deadline, `${x.name} expired before its deadline`);
  assert.equal(q.size, 0);
});

test('clear() stops the timers: nothing expires afterwards', async () => {
  const { q, expired } = queue();
  q.add({ name: 'a', deadline: performance.now() + 0.1, done: false });
  q.add({ name: 'b', deadline: performance.now() + 5, done: false });
  q.clear();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(expired.length, 0);
  assert.equal(q.size, 0);
});

test('a late sweep that finds several items due expires them in deadline order, not insertion order', async (t) => {
  let clock = 0;
  const expired: string[] = [];
  const q = new DeadlineQueue<Item>(() => clock, (it) => expired.push(it.name));
  t.after(() => q.clear());
  q.add({ name: 'later', deadline: 10, done: false });
  q.add({ name: 'sooner', deadline: 0.5, done: false });
  clock = 50; // the event loop was busy: both are past due when the sweep runs
  await waitFor(() => expired.length === 2);
  assert.deepEqual(expired, ['sooner', 'later']);
});
