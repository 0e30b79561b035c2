// REAP stays Operational under a paced one-way stream on the kernel path (found 5 Dec: `curl
// --limit-rate 3M` downloading from the peer made REAP explore and come back several times a
// second, a `reap-state` line each time, though nothing failed). B sends A a burst every 1.2 s
// (TCP: data one way, A's ACKs back), quiet in between for longer than the Send Timeout (500 ms):
// on the ULID pair (path `kernel`), then after both hosts re-homed off a black-holed link P (path
// `encap`, the tc programs). RFC 5534 §4.1: the host that received last keeps its peer's Send Timer
// quiet with Keepalives, and only a Send Timer that expires with nothing received explores. The
// defect is the pause being longer than the Send Timeout, whatever its length; the test takes 500 ms
// rather than the fast profile's 150 ms, which a busy machine's stall of both daemons outlasted
// (CI run 129: both hosts explored twice, 7 ms apart, with nothing failed).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { CLANG, needs } from '../helpers/prereq.ts';
import { LAB_ADDR, blackhole, nsExec, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB, type LogRecord } from '../../lab/daemons.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog } from './fixture.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';

const PORT = 9300;
/** Octets per burst, and the time between bursts (ms): silent most of each period, for over twice the Send Timeout. */
const BURST = 64 * 1024;
const PERIOD_MS = 1200;
/** REAP's Send Timeout on both hosts (ms; the fast profile's other timers as they are). */
const SEND_TIMEOUT_MS = 500;
/** Bursts watched on each path. */
const BURSTS = 6;

/** B's side: every PERIOD_MS, one burst to each connection. */
const SERVER = `const n=require('net');const b=Buffer.alloc(${BURST},7);` +
  `n.createServer((s)=>{s.on('error',()=>{});const i=setInterval(()=>s.write(b),${PERIOD_MS});s.on('close',()=>clearInterval(i));}).listen(${PORT},'::');setInterval(()=>{},1e6)`;
/** A's side: connect to B's ULID, print the octets received so far after each burst. */
const CLIENT = (to: string): string => `const s=require('net').connect({host:'${to}',port:${PORT}});let n=0,k=0;` +
  `s.on('data',(d)=>{n+=d.length;const m=Math.floor(n/${BURST});if(m>k){k=m;console.log(k)}});s.on('error',(e)=>{console.error(e.message);process.exit(1)})`;

function inNs(t: TestContext, ns: string, script: string): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { p.kill('SIGKILL'); });
  return p;
}

/** Explorations (`reap-state` exploring) of host `h` with its peer logged from `since` on. */
function explorations(lab: Lab, h: 'a' | 'b', since: number): LogRecord[] {
  const peer = h === 'a' ? LAB_ADDR.bP : LAB_ADDR.aP;
  return log(lab, h).filter((x) => x.msg === 'reap-state' && x.state === 'exploring' && x.peerUlid === peer && Date.parse(x.ts) >= since);
}

test('dataPath: kernel: a paced one-way stream with pauses keeps REAP Operational, on the ULID pair and after a re-homing', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  await daemons(t, lab, { sendTimeout: SEND_TIMEOUT_MS }, { dataPath: 'kernel' });
  inNs(t, lab.b, SERVER);
  await waitFor(() => nsExec(lab.b, ['ss', '-Htln', `sport = :${PORT}`], { check: false }).stdout.includes(String(PORT)), 'B listening');
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(lab, 'a', (x) => x.msg === 'context on the kernel path' && x.peer === LAB_ADDR.bP);
  await waitLog(lab, 'b', (x) => x.msg === 'context on the kernel path' && x.peer === LAB_ADDR.aP);
  const client = inNs(t, lab.a, CLIENT(LAB_ADDR.bP));
  const got = { bursts: 0 };
  readline.createInterface({ input: client.stdout! }).on('line', (l) => { got.bursts = Number(l); });
  const bursts = async (n: number, what: string): Promise<void> => {
    const until = got.bursts + n;
    await waitFor(() => got.bursts >= until, `${n} bursts ${what}`, DEADLINE_MS + n * PERIOD_MS, 50);
  };
  await bursts(2, 'to start');

  // On the ULID pair: the kernel carries the stream, REAP learns from its counters.
  const ulidPair = Date.now();
  await bursts(BURSTS, 'on the ULID pair');
  const onUlidPair = { a: explorations(lab, 'a', ulidPair), b: explorations(lab, 'b', ulidPair) };

  // P black-holed at A: the next burst goes unanswered, both re-home onto Q and encapsulate in the kernel.
  blackhole(lab, 'P');
  const encap = (peer: string) => (x: LogRecord): boolean => x.msg === 'context on the kernel encapsulation' && x.peer === peer && Date.parse(x.ts) >= ulidPair;
  await waitLog(lab, 'a', encap(LAB_ADDR.bP), 60_000);
  await waitLog(lab, 'b', encap(LAB_ADDR.aP), 60_000);
  await bursts(1, 'after the re-homing');
  const rehomed = Date.now();
  await bursts(BURSTS, 'on the kernel encapsulation');
  const afterRehoming = { a: explorations(lab, 'a', rehomed), b: explorations(lab, 'b', rehomed) };

  const say = (x: { a: LogRecord[]; b: LogRecord[] }): string => `A ${x.a.length} ${JSON.stringify(x.a.map((r) => r.ts))}, B ${x.b.length} ${JSON.stringify(x.b.map((r) => r.ts))}`;
  t.diagnostic(`explorations on the ULID pair: ${say(onUlidPair)}; after the re-homing: ${say(afterRehoming)}`);
  // The defect explored at about every burst on each host: 5 and 6 of 6 with these timers (8 of 8
  // with a 150 ms Send Timeout and 400 ms between bursts), put back in the bundle for a run (a
  // both-ways reading fed as received, then sent). One exploration at most per host and path is let
  // through: a Send Timeout can still fire once on a machine that stalls both daemons for longer
  // (a scratch-machine run saw both hosts explore once, together, in 8 bursts of the 150 ms one).
  // More than that is the defect back.
  for (const [where, x] of [['on the ULID pair', onUlidPair], ['on the kernel encapsulation', afterRehoming]] as const) {
    assert.ok(x.a.length <= 1 && x.b.length <= 1, `REAP explored ${where}: ${say(x)}`);
  }
});
