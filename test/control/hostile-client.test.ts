// A client that pipelines requests on the control socket of a real `shim6 resolver`
// and never reads its replies: the server cuts it off instead of queueing replies
// without bound, its memory stays bounded, and it goes on serving `shim6 status`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { ready, runShim6, startResolver, tmpdir, vmRssKiB } from './process.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * The resolver's RSS must stay under this while the hostile client writes. It
 * idles at about 110 MiB; the server holds at most MAX_QUEUED_OUTPUT (1 MiB) of
 * unread replies and MAX_IN_FLIGHT answers per client, so 300 MiB is generous.
 * The server before these bounds passed it within a few hundred thousand lines.
 */
const RSS_BOUND_KIB = 300 * 1024;

/** The client gives up (and the test fails) after writing this many request lines unanswered by a disconnect. */
const MAX_LINES = 4_000_000;
const LINE = '{"method":"status"}\n';
const BATCH = 1000;

test('a client that pipelines status requests and never reads is disconnected; the server stays small and keeps answering', async (t) => {
  const sock = path.join(tmpdir(t), 'control.sock');
  const resolver = startResolver(t, sock);
  await ready(resolver);
  const pid = resolver.child.pid!;
  let maxRss = vmRssKiB(pid);

  const c = net.connect(sock);
  c.pause(); // never read: replies pile up on the server's side
  let closed = false;
  let error: string | undefined;
  c.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
  c.on('close', () => { closed = true; });
  await new Promise<void>((resolve, reject) => { c.once('connect', resolve); c.once('error', reject); });

  let written = 5000;
  c.write(LINE.repeat(written));
  const batch = LINE.repeat(BATCH);
  while (!closed && written < MAX_LINES) {
    maxRss = Math.max(maxRss, vmRssKiB(pid));
    if (maxRss > RSS_BOUND_KIB) break;
    written += BATCH;
    if (!c.write(batch)) {
      // Wait until the kernel takes more or the server hangs up.
      await new Promise<void>((resolve) => {
        const done = (): void => { c.off('drain', done); c.off('close', done); resolve(); };
        c.on('drain', done);
        c.on('close', done);
      });
    }
  }
  const rssAtStop = maxRss;
  if (!closed) c.destroy();
  assert.ok(rssAtStop <= RSS_BOUND_KIB, `server RSS reached ${Math.round(rssAtStop / 1024)} MiB (bound ${RSS_BOUND_KIB / 1024} MiB) before it disconnected the client; ${written} lines written`);
  assert.ok(closed, `the server never disconnected the client (${written} lines written, RSS ${Math.round(maxRss / 1024)} MiB)`);
  t.diagnostic(`disconnected after ${written} lines written (${error ?? 'clean close'}); server RSS peak ${Math.round(maxRss / 1024)} MiB`);

  // The server logs the disconnect once and keeps serving.
  await waitFor(() => resolver.stderr().includes('control client disconnected'), 'the disconnect in the log');
  const st = await runShim6(t, ['status', '--json', '--socket', sock]);
  assert.equal(st.status, 0, st.stderr);
  assert.ok((JSON.parse(st.stdout) as { resolver?: unknown }).resolver, st.stdout);
  maxRss = Math.max(maxRss, vmRssKiB(pid));
  assert.ok(maxRss <= RSS_BOUND_KIB, `server RSS ${Math.round(maxRss / 1024)} MiB after the client was cut off`);
  assert.equal(resolver.stderr().match(/control client disconnected/g)?.length, 1, resolver.stderr());

  resolver.child.kill('SIGTERM');
  assert.equal(await resolver.exited(), 0, resolver.stderr());
});
