// E2E (issue 18): A's daemon has a CGA identity (the lab's HBA/CGA-compatible
// set and its key); an address on a prefix outside that set appears on A while a
// stream runs, A's daemon announces it in a CGA-signed Update Request, and B's
// daemon verifies and accepts it. Update Requests with a forged signature, or
// with A's real signature over another locator list, sent to B's daemon from
// A's namespace, are refused (Error code 2) and change nothing. A key below
// 1024 bits is refused before the daemon starts. The CGA ULID a daemon
// generated leaves the host at stop, even from an interface renamed meanwhile.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { LAB_ADDR, LAB_IF, nsExec, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB, labDaemonFiles } from '../../lab/daemons.ts';
import { LAB_HBA } from '../../lab/hba.ts';
import { LAB_CGA_KEY_A } from '../../lab/cga-key.ts';
import { runStream } from '../../lab/run.ts';
import { LAB_ADDR_R, LAB_IF_R, LAB_INTERFACES_R, addAddress, linkRUp } from '../../lab/renumber.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { generateCgaUlid, loadCgaKey } from '../../shim/daemon/cga-identity.ts';
import { encodeMessage, decodeMessage, type Shim6Option } from '../../shim/wire/index.ts';
import { signCgaLocators } from '../../shim/wire/cga.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { E2E_TIMEOUT_MS, freshLab, log, oneDaemon, waitLog, STREAM_RATE } from './fixture.ts';
import { shim6Async } from '../helpers/cli.ts';
import { hostWithLink } from '../helpers/netns.ts';
import { BUILT_BIN, requireBuilt, track, waitFor } from '../install/built.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface PeerView { address: string; verified: boolean; probed?: boolean }
interface Status {
  daemon: { stats: { drops: Record<string, number> }; cga?: Record<string, unknown> };
  engine: { localGeneration: number; contexts: { peerUlid: string; state: string; contextTag: number; peerLocators: PeerView[] }[] };
}
const status = async (lab: Lab, h: 'a' | 'b'): Promise<Status> => await controlRequest(labDaemonFiles(lab, h).control, 'status') as Status;
const contextWith = (s: Status, peer: string) => s.engine.contexts.find((c) => c.peerUlid === peer && c.state === 'ESTABLISHED');

/** B's daemon, then A's watching link R too (B does not: it has no key to prove its R address). */
async function cgaLab(t: TestContext): Promise<Lab> {
  const lab = await freshLab(t);
  linkRUp(lab);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a', { interfaces: LAB_INTERFACES_R });
  return lab;
}

test('CGA: an address outside A\'s HBA set reaches B in a signed Update Request, and B\'s daemon verifies and accepts it; the stream runs on', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await cgaLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 5000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  const upd = await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === LAB_ADDR.aP && (r.locators as string[]).includes(LAB_ADDR_R.a));
  t.diagnostic(`B's view of A after the Update: ${JSON.stringify(upd.locators)}`);
  const b = await status(lab, 'b');
  const ctx = contextWith(b, LAB_ADDR.aP);
  assert.ok(ctx, 'B has its context with A');
  assert.deepEqual(ctx.peerLocators.find((l) => l.address === LAB_ADDR_R.a)?.verified, true, 'A\'s new locator is verified at B (by the CGA Signature)');
  assert.equal(b.daemon.stats.drops['locator-unverified'] ?? 0, 0, 'B refused nothing');
  const r = await stream;
  assert.equal(r.complete, true);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte arrived once, in order, intact');
  // The private key is in neither A's status nor its log; the status names the key's public facts.
  const a = await status(lab, 'a');
  assert.deepEqual(a.daemon.cga, { keyFile: labDaemonFiles(lab, 'a').cgaKey, keyBits: 2048, sec: 0, ulid: 'hba-member' });
  const keyBody = LAB_CGA_KEY_A.split('\n').slice(1, -2);
  const aText = JSON.stringify(a) + readFileSync(labDaemonFiles(lab, 'a').log, 'utf8');
  for (const line of keyBody) assert.ok(!aText.includes(line), 'no line of the private key in A\'s status or log');
  assert.ok(!aText.includes('PRIVATE KEY'));
});

test('CGA ULID: A has a key and no HBA set, its ULID is the CGA its daemon generates; B\'s daemon proves it, and mid-stream takes an address on a prefix nothing was generated for', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  linkRUp(lab);
  await oneDaemon(t, lab, 'b');
  await oneDaemon(t, lab, 'a', { interfaces: LAB_INTERFACES_R, hba: undefined });
  // The CGA of A's key on the prefix of its first address (P's): its modifier is derived from the key, so this is the one.
  const expected = generateCgaUlid(loadCgaKey(labDaemonFiles(lab, 'a').cgaKey), LAB_ADDR.aP, 0).address;
  const a0 = await status(lab, 'a');
  const ready = await waitLog(lab, 'a', (r) => r.msg === 'daemon ready');
  assert.equal(ready.ulid, expected, 'A\'s ULID is the generated CGA');
  assert.equal((ready.locators as string[])[0], expected, 'first in its locator set');
  assert.ok(![LAB_ADDR.aP, LAB_ADDR.aQ, ...LAB_HBA.a.members.map((m) => m.address)].includes(expected), 'not an HBA member nor an address the lab made');
  assert.equal(a0.daemon.cga?.ulid, 'cga');
  assert.match(nsExec(lab.a, ['ip', '-6', 'addr', 'show', 'dev', LAB_IF.P]).stdout, new RegExp(`${expected}/64`), 'the CGA is on A\'s P interface');

  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const b0 = contextWith(await status(lab, 'b'), expected);
  assert.ok(b0, 'B\'s context with A is on A\'s CGA ULID (B checked it against A\'s CGA parameters)');

  addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
  const upd = await waitLog(lab, 'b', (r) => r.msg === 'locator-set-updated' && r.peerUlid === expected && (r.locators as string[]).includes(LAB_ADDR_R.a));
  t.diagnostic(`B's view of A (ULID ${expected}) after the Update: ${JSON.stringify(upd.locators)}`);
  const b = await status(lab, 'b');
  assert.equal(contextWith(b, expected)?.peerLocators.find((l) => l.address === LAB_ADDR_R.a)?.verified, true, 'B verified the new locator by A\'s CGA Signature');
  assert.equal(b.daemon.stats.drops['locator-unverified'] ?? 0, 0, 'B refused nothing');
  const r = await stream;
  assert.equal(r.complete, true);
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte arrived once, in order, intact');
  const traffic = (contextWith(await status(lab, 'b'), expected) as unknown as { traffic: { bytesIn: number } }).traffic;
  assert.ok(traffic.bytesIn >= r.bytes_sent, `the stream went through B's context with A's CGA ULID (${traffic.bytesIn} bytes in, ${r.bytes_sent} sent)`);
});

/** Send one Update Request to B's daemon from A's ULID (another UDP port than the daemon's); B's answer, decoded. */
function sendFromA(lab: Lab, bytes: Uint8Array): { type: string; errorCode?: number } | null {
  const code = `
    import dgram from 'node:dgram';
    const s = dgram.createSocket('udp6');
    s.bind(0, ${JSON.stringify(LAB_ADDR.aP)}, () => s.send(Buffer.from(${JSON.stringify(Buffer.from(bytes).toString('hex'))}, 'hex'), 5533, ${JSON.stringify(LAB_ADDR.bP)}));
    s.on('message', (m) => { console.log(m.toString('hex')); process.exit(0); });
    setTimeout(() => { console.log('none'); process.exit(0); }, 3000);`;
  const r = spawnSync('ip', ['netns', 'exec', lab.a, process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout.trim();
  if (out === 'none') return null;
  const m = decodeMessage(new Uint8Array(Buffer.from(out, 'hex')));
  return { type: m.type, ...(m.type === 'Error' ? { errorCode: m.errorCode } : {}) };
}

/** A context's view of its peer's locators as an Update Request would change it: all but REAP's `probed` mark. */
const listOf = (ls: readonly PeerView[] | undefined): unknown => ls?.map(({ probed: _probed, ...rest }) => rest);

test('CGA: B\'s daemon refuses Update Requests whose signature is forged or covers another locator list (Error code 2, nothing changes), and takes the genuine one', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await cgaLab(t);
  const since = Date.now();
  const stream = runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
  await waitLog(lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since);
  const a = await status(lab, 'a');
  const before = contextWith(await status(lab, 'b'), LAB_ADDR.aP);
  assert.ok(before);
  const gen = (a.engine.localGeneration + 1000) >>> 0;
  const added = '2001:db8:3::66';
  const list: Shim6Option = {
    type: 'LocatorList', critical: false, generation: gen,
    locators: [{ address: LAB_ADDR.aP, verificationMethod: VerificationMethod.HBA }, { address: LAB_ADDR.aQ, verificationMethod: VerificationMethod.HBA }, { address: added, verificationMethod: VerificationMethod.CGA }],
  };
  const pds: Shim6Option = { type: 'CgaParameterDataStructure', critical: false, pds: new Uint8Array(Buffer.from(LAB_HBA.a.members[0]!.params, 'hex')) };
  const update = (signature: Uint8Array, nonce: number): Uint8Array => encodeMessage({
    type: 'UpdateRequest', contextTag: before.contextTag, requestNonce: nonce, options: [list, pds, { type: 'CgaSignature', critical: false, signature }],
  });
  const cases: [string, Uint8Array][] = [
    ['a forged signature', new Uint8Array(randomBytes(256))],
    ['A\'s signature over another locator list', signCgaLocators(LAB_CGA_KEY_A, gen, ['2001:db8:3::67'])],
    ['A\'s signature over an older generation', signCgaLocators(LAB_CGA_KEY_A, gen - 1, [added])],
  ];
  let refused = 0;
  for (const [why, sig] of cases) {
    const reply = sendFromA(lab, update(sig, 100 + refused));
    assert.deepEqual(reply, { type: 'Error', errorCode: 2 }, `${why}: B answers Error code 2 (locator verification failed)`);
    refused++;
    const b = await status(lab, 'b');
    assert.equal(b.daemon.stats.drops['locator-unverified'], refused, `${why}: counted at B`);
    // The locator list, not REAP's `probed` marks: on a busy host a false exploration probes A's locators meanwhile.
    assert.deepEqual(listOf(contextWith(b, LAB_ADDR.aP)?.peerLocators), listOf(before.peerLocators), `${why}: B's view of A unchanged`);
  }
  // The same message with A's genuine signature is merged (its Update Ack goes to the context's
  // port, A's daemon, which has no such request outstanding): the refusals were for the signature only.
  assert.equal(sendFromA(lab, update(signCgaLocators(LAB_CGA_KEY_A, gen, [added]), 200)), null, 'no Error for the genuine signature');
  const after = contextWith(await status(lab, 'b'), LAB_ADDR.aP);
  assert.equal(after?.peerLocators.find((l) => l.address === added)?.verified, true);
  assert.equal((await status(lab, 'b')).daemon.stats.drops['locator-unverified'], refused);
  const r = await stream;
  assert.equal(r.bytes_verified, r.bytes_sent, 'the stream was not disturbed');
  assert.ok(!log(lab, 'b').some((x) => x.level === 'error'), 'no errors in B\'s log');
});

test('CGA: a key below 1024 bits, a public key, a missing file and a key that did not make the HBA set are refused at start, naming the file and the reason', { timeout: 60_000 }, async (t) => {
  const dir = tmpdir(t, 'shim6-cga-');
  const short = path.join(dir, 'short.pem');
  writeFileSync(short, generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const pub = path.join(dir, 'public.pem');
  writeFileSync(pub, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
  const other = path.join(dir, 'other.pem');
  writeFileSync(other, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const hba = path.join(dir, 'hba.json');
  writeFileSync(hba, JSON.stringify(LAB_HBA.a));
  const run = (extra: Record<string, unknown>) => {
    const cfg = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(cfg, JSON.stringify({ listen: [], controlSocket: path.join(dir, 'c.sock'), cacheFile: path.join(dir, 'cache.json'), ...extra }));
    return shim6Async(['daemon', '--config', cfg]);
  };
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ cga: { key: short } }, 2, /ECGA_KEY.*short\.pem.*512 bits.*at least 1024/],
    [{ cga: { key: pub } }, 2, /ECGA_KEY.*public\.pem.*public key/],
    [{ cga: { key: path.join(dir, 'missing.pem') } }, 1, /ECGA_KEY.*missing\.pem.*no such file/],
    [{ cga: { key: other }, hba }, 2, /ECGA_KEY.*other\.pem.*not the key of the HBA set.*hba\.json/],
    [{ cga: { key: other, sec: 2 } }, 2, /ECONFIG.*cga\.sec/],
  ];
  for (const [extra, exit, message] of cases) {
    const r = await run(extra);
    assert.equal(r.status, exit, `${JSON.stringify(extra)}: exit ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.ok(!r.stderr.includes('PRIVATE KEY') && !r.stderr.includes(readFileSync(other, 'utf8').split('\n')[1]!), 'no key material in the message');
  }
});

test('CGA ULID: the address the daemon generated is removed at stop even after its interface was renamed', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'shim6-cga-rename-');
  const { net, ns } = hostWithLink(t, 'cgr');
  const key = path.join(dir, 'cga.pem');
  writeFileSync(key, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const file = path.join(dir, 'shim6.json');
  writeFileSync(file, JSON.stringify({
    listen: [], tun: { name: 'cgrtun' }, cga: { key, sec: 0 },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log: { level: 'info', format: 'json' },
  }));
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  const line = d.out().split('\n').find((l) => l.includes('"CGA ULID"'));
  assert.ok(line, `no CGA ULID line:\n${d.out()}`);
  const { address: cga, dev } = JSON.parse(line) as { address: string; dev: string };
  assert.equal(dev, 'cgr0');
  const holders = (): string => net.run(ns, ['ip', '-6', 'addr', 'show', 'to', `${cga}/128`]).stdout;
  assert.match(holders(), /cgr0/, 'the CGA is on cgr0');

  // Renamed while the daemon runs (udev, a VPN tool): `dev cgr0` no longer finds it.
  for (const args of [['cgr0', 'down'], ['cgr0', 'name', 'cgrx'], ['cgrx', 'up']]) net.run(ns, ['ip', 'link', 'set', 'dev', ...args]);
  assert.match(holders(), /cgrx/, 'the CGA moved with its interface');

  process.kill(d.child.pid!, 'SIGTERM'); // `ip netns exec` execs the daemon: the same pid
  await waitFor(() => d.status() !== undefined, 'the daemon stopped');
  assert.match(d.out(), /stopped: routes/);
  assert.doesNotMatch(d.out(), /CGA ULID not removed/);
  assert.equal(holders().trim(), '', `the CGA ${cga} is left on the host after the stop`);
});

// A network manager that reconfigures an interface (its addresses flushed and made again, or the
// link deleted and made anew) takes the daemon's CGA ULID with it, and nothing put it back: the
// ULID stayed among our locators only as a kept, BROKEN one, the applications' new connections
// went from the host's other address on that prefix — a ULID no PDS proves, so their contexts
// carried no Locator List and could never re-home — until the daemon was restarted. It is put
// back while its prefix is on the host (and when the prefix comes back).
test('CGA ULID: removed from its interface while the daemon runs (addresses flushed and made again), it is put back and is a usable locator again', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'shim6-cga-flush-');
  const { net, ns } = hostWithLink(t, 'cgf');
  const key = path.join(dir, 'cga.pem');
  writeFileSync(key, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const file = path.join(dir, 'shim6.json');
  const control = path.join(dir, 'control.sock');
  writeFileSync(file, JSON.stringify({
    listen: [], tun: { name: 'cgftun' }, cga: { key, sec: 0 },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: control, log: { level: 'info', format: 'json' },
  }));
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  const line = d.out().split('\n').find((l) => l.includes('"CGA ULID"'));
  assert.ok(line, `no CGA ULID line:\n${d.out()}`);
  const { address: cga } = JSON.parse(line) as { address: string };
  const holders = (): string => net.run(ns, ['ip', '-6', 'addr', 'show', 'to', `${cga}/128`]).stdout;
  interface Locators { daemon: { locators: { address: string; up: boolean }[]; keptUlids?: { ulid: string }[] } }
  const locator = async (): Promise<{ address: string; up: boolean } | undefined> => ((await controlRequest(control, 'status')) as Locators).daemon.locators.find((l) => l.address === cga);
  assert.match(holders(), /cgf0/);
  net.run(ns, ['ip', '-6', 'addr', 'flush', 'dev', 'cgf0', 'scope', 'global']);
  await waitFor(async () => (await locator()) === undefined, 'the daemon saw its CGA ULID go');
  net.run(ns, ['ip', '-6', 'addr', 'add', '2001:db8:5533::1/64', 'dev', 'cgf0', 'nodad']); // the manager's address back
  await waitFor(() => /cgf0/.test(holders()), `the CGA ULID ${cga} put back on cgf0; log: ${d.out().split('\n').slice(-6).join(' | ')}`);
  await waitFor(async () => (await locator())?.up === true, 'a usable locator again');
  assert.deepEqual(((await controlRequest(control, 'status')) as Locators).daemon.keptUlids ?? [], [], 'no longer kept as a ULID whose address is gone');
});
