// A clean restart (SIGTERM) of the daemon on the host of a UDP server whose socket is unconnected
// (it answers with sendto, as DNS, QUIC and SIP servers do). A's connected UDP socket sends to B's
// ULID; link P fails and the flow moves to Q; then B's daemon is stopped (SIGTERM: it closes its
// contexts with A, so A removes its route) and started again. The kernel's socket tables show no
// peer for B's socket, so only the context pairs B's cache file saved can bring A's route back:
// B's new daemon sets them up again (docs/operations.md "Protection that lasts"), A answers, and
// the echoes flow again. Before that, every datagram A sent after the restart failed (ENETUNREACH:
// P down, no route through the TUN) for good. No timing assertions: the echoes decide, waited for.
// Then the same after SIGKILL (no stop, no write of the cache file at it) of a daemon whose context
// was stable for longer than the saved pairs' freshness (idle timeout + 60 s): the file's `savedAt`
// is that old (a write that changes nothing is skipped), and the saved pair is set up again because
// the running daemon's checks moved the file's modification time (sink.ts CacheFileWriter). A's
// client is paused over that restart, so that B's saved pairs, not A's next datagram (R1bis), bring
// the context back.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { needs } from '../helpers/prereq.ts';
import { waitFor } from '../helpers/wait.ts';
import { LAB_ADDR, setLink, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog } from './fixture.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { savedAtOf, savedFreshForMs } from '../../shim/daemon/resume-saved.ts';
import { savedContexts } from '../../shim/daemon/sink.ts';

const PORT = 7100;
/** B: an unconnected socket echoing every datagram with sendto. */
const SERVER = `const s=require('dgram').createSocket('udp6');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(${PORT},'::',()=>console.log(JSON.stringify({ev:'listening'})));`;
/** A: a connect()ed socket to the name's address (A's stub), 50 datagrams/s; a line of totals every 200 ms. */
const CLIENT = (name: string, stub: string): string => `(async()=>{const dgram=require('dgram');const r=new (require('dns').promises.Resolver)();r.setServers([${JSON.stringify(stub)}]);
const addr=(await r.resolve6(${JSON.stringify(name)}))[0];const s=dgram.createSocket('udp6');await new Promise((ok)=>s.bind(0,'::',ok));
await new Promise((ok)=>s.connect(${PORT},addr,ok));let sent=0,rx=0,errs=0;s.on('message',()=>rx++);s.on('error',()=>errs++);
setInterval(()=>s.send(Buffer.alloc(200),(e)=>{if(e)errs++;else sent++;}),20);
setInterval(()=>console.log(JSON.stringify({ev:'tick',remote:addr,local:s.address().address,sent,rx,errs})),200);})();`;

interface Totals { sent: number; rx: number; errs: number }

function inNs(t: TestContext, ns: string, code: string, on: (e: Record<string, unknown>) => void): ChildProcess {
  const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: c.stdout! }).on('line', (l) => { try { on(JSON.parse(l) as Record<string, unknown>); } catch { /* not ours */ } });
  t.after(() => { c.kill('SIGKILL'); });
  return c;
}

/** B's UDP echo server, then A's client of it by name through A's stub `resolver`: the client's running totals, and its process. */
async function echoFlow(t: TestContext, lab: Lab, resolver: string): Promise<{ now: Totals; client: ChildProcess }> {
  let listening = false;
  inNs(t, lab.b, SERVER, (e) => { if (e.ev === 'listening') listening = true; });
  await waitFor(() => listening, 'B\'s UDP echo server');
  const now: Totals = { sent: 0, rx: 0, errs: 0 };
  const client = inNs(t, lab.a, CLIENT(LAB_B_NAME, resolver), (e) => { if (e.ev === 'tick') Object.assign(now, { sent: e.sent, rx: e.rx, errs: e.errs }); });
  return { now, client };
}

async function udpServerRestart(t: TestContext, lab: Lab, dataPath: 'tun' | 'kernel'): Promise<void> {
  const s = await daemons(t, lab, {}, { dataPath });
  const { now } = await echoFlow(t, lab, s.resolverA);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
  await waitFor(() => now.rx >= 50, 'echoes through the context');
  // P fails: the flow moves to Q.
  setLink(lab, 'P', false);
  const atFail = { ...now };
  await waitFor(() => now.rx >= atFail.rx + 100, 'echoes again after P failed (the context on Q)', 60_000);
  // B's daemon: SIGTERM (Close to A, the stop's cache file), then started again.
  const restartedAt = Date.now();
  const before = { ...now };
  await s.restart('b');
  const up = { ...now };
  // Back: echoes flow again, and A's datagrams stop failing (the errors of the restart's own gap are F5's).
  await waitFor(() => now.rx >= up.rx + 100, 'echoes again after B\'s restart', 90_000);
  const back = { ...now };
  await waitFor(() => now.rx >= back.rx + 100, 'echoes go on', 60_000);
  assert.equal(now.errs, back.errs, 'no datagram failed once the flow was back');
  const again = log(lab, 'b').find((x) => x.msg === 'saved contexts set up again' && Date.parse(x.ts) >= restartedAt);
  assert.ok(again, 'B\'s new daemon set the saved contexts up again');
  assert.ok((again.peers as string[]).includes(LAB_ADDR.aP), 'the pair with A among them');
  assert.ok(log(lab, 'a').some((x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt), 'A has a context with B again');
  t.diagnostic(`${dataPath}: datagrams failed during the restart: ${up.errs - before.errs}; after it until the flow was back: ${back.errs - up.errs}; after: ${now.errs - back.errs}`);
}

for (const dataPath of ['tun', 'kernel'] as const) {
  test(`dataPath: ${dataPath}: B's daemon restarts (SIGTERM) after P failed; A's connected UDP flow to B's unconnected echo server is protected again from B's saved contexts`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    await udpServerRestart(t, await freshLab(t), dataPath);
  });
}

/** The cache file's `savedAt` and pairs, or undefined while it is not there (or mid-rename). */
function cacheFile(file: string): { savedAt: number | undefined; pairs: ReturnType<typeof savedContexts> } | undefined {
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return { savedAt: savedAtOf(data), pairs: savedContexts(data) };
  } catch {
    return undefined;
  }
}

test('dataPath: tun: B\'s daemon is killed (SIGKILL) after its context with A was stable for longer than the idle timeout + 60 s; the new daemon sets the saved context up again', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  // A short idle timeout: the saved pairs are fresh for 10 s + 60 s; the flow (50 datagrams/s each way) keeps the context live.
  const idleTimeout = 10_000;
  const s = await daemons(t, lab, { idleTimeout }, { dataPath: 'tun' });
  const { now, client } = await echoFlow(t, lab, s.resolverA);
  await waitLog(lab, 'b', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.aP);
  await waitFor(() => now.rx >= 50, 'echoes through the context');
  const file = s.files('b').cache;
  const named = (): boolean => cacheFile(file)?.pairs.some((p) => p.localUlid === LAB_ADDR.bP && p.peerUlid === LAB_ADDR.aP) === true;
  await waitFor(named, 'B\'s cache file names the pair with A');
  // The context carries on unchanged until the file's own time is older than the pairs' freshness.
  const fresh = savedFreshForMs(idleTimeout);
  await waitFor(() => { const f = cacheFile(file); return f?.savedAt !== undefined && Date.now() - f.savedAt > fresh + 5000; }, 'B\'s cache file older than the idle timeout + 60 s', fresh + 90_000, 500);
  const rxBefore = now.rx;
  await waitFor(() => now.rx >= rxBefore + 50, 'echoes still flow (the context was live until the kill)');
  assert.ok(named(), 'the file still names the pair');
  const ageAtKill = Date.now() - cacheFile(file)!.savedAt!;
  // A's client is paused over the restart: A kept its context (no Close), so its next datagram would
  // bring the context back by R1bis/I2bis before B's new daemon reaches its saved pairs (it sets
  // them up once its start's work is done), and that path is not the one under test.
  client.kill('SIGSTOP');
  // and A's Keepalives for the echoes it had received stop too (150 ms in the fast profile):
  // A has sent none between two readings half a second apart.
  let keepalives = -1;
  await waitFor(async () => {
    const sent = ((await controlRequest(labDaemonFiles(lab, 'a').control, 'status')) as unknown as { engine: { messages: { sent: Record<string, number> } } }).engine.messages.sent.Keepalive ?? 0;
    const quiet = sent === keepalives;
    keepalives = sent;
    return quiet;
  }, 'A\'s Keepalives to B over', undefined, 500);
  const killedAt = Date.now();
  await s.crash('b');
  await s.start('b');
  const again = await waitLog(lab, 'b', (x) => Date.parse(x.ts) >= killedAt && (x.msg === 'saved contexts set up again' || x.msg === 'saved contexts not set up again: the cache file is too old'));
  assert.equal(again.msg, 'saved contexts set up again', `B's new daemon set the saved context up again (${JSON.stringify(again)})`);
  assert.ok((again.peers as string[]).includes(LAB_ADDR.aP), 'the pair with A among them');
  await waitLog(lab, 'b', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.aP && Date.parse(x.ts) >= killedAt);
  client.kill('SIGCONT');
  const up = now.rx;
  await waitFor(() => now.rx >= up + 100, 'echoes go on after B\'s restart');
  t.diagnostic(`the file's savedAt was ${ageAtKill} ms old at the kill (fresh for ${fresh} ms); the restart saw the pairs ${String(again.ageMs)} ms old`);
});
