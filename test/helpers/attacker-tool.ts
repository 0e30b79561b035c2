/**
 * The attacker of the trust tests (issue 15): a process inside the lab's
 * attacker namespace that can only do what a host on link P can do — send UDP
 * from its own addresses (or, with net.ipv6.ip_nonlocal_bind, forge a source)
 * and watch the frames the hub floods to it. It crafts Shim6 with the
 * project's own codecs (shim/wire/), sends with node:dgram (floods through the
 * project's batched UDP socket), and captures link P with dumpcap.
 *
 * Protocol: one JSON command per stdin line `{ id, op, args }`, one JSON reply
 * per stdout line `{ id, ok, result | error }`; the ops and their shapes are
 * in attacker.ts, which starts and drives this process. A handshake ends with
 * a barrier (an I1 whose R1 must come back on the same socket), so "no R2"
 * means the daemon had processed the I2 and not answered it, never "not yet".
 */
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { decodePayloadHeader, encodeMessage, encodePayloadHeader, isPayloadHeader, tryDecodeMessage, type Shim6Message, type Shim6Option } from '../../shim/wire/index.ts';
import { PcapStream, type CapturedUdp } from './pcap-stream.ts';
import { loadAddon } from '../../native/addon.ts';
import { formatIpv6, parseIpv6 } from '../../shim/wire/ipv6.ts';
import { generateCga } from '../../shim/wire/cga.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import type { CaptureQuery, CgaFloodArgs, ClaimArgs, CgaFloodResult, FloodArgs, FloodResult, HandshakeArgs, HandshakeResult, InboxSummary, RawArgs, SpoofFloodArgs, SpoofFloodResult, SprayArgs } from './attacker.ts';

const SHIM6_PORT = 5533;
const RETRY_MS = 1000;
const REPLY_DEADLINE_MS = 30_000;
const NO_NEXT_HEADER = 59;

interface Received { t: number; from: string; port: number; bytes: Uint8Array }
interface Sock { s: dgram.Socket; port: number; inbox: Received[] }

const sockets = new Map<string, Sock>();
const captured: CapturedUdp[] = [];
let dumpcap: ChildProcess | undefined;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tag47 = (): number => randomBytes(6).readUIntBE(0, 6) % 2 ** 47;
const u32 = (): number => randomBytes(4).readUInt32BE(0);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function openSocket(address: string, port: number, onMessage?: (m: Buffer, r: dgram.RemoteInfo) => void): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp6', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  s.on('error', () => undefined); // a send error (no route, buffer full) is a lost packet, as on the wire
  if (onMessage) s.on('message', onMessage);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => { s.off('error', reject); resolve(s); });
  });
}

async function socket(args: { name: string; address: string; port?: number }): Promise<{ port: number }> {
  sockets.get(args.name)?.s.close();
  const inbox: Received[] = [];
  const s = await openSocket(args.address, args.port ?? 0, (m, r) => inbox.push({ t: performance.now(), from: r.address, port: r.port, bytes: new Uint8Array(m) }));
  const port = s.address().port;
  sockets.set(args.name, { s, port, inbox });
  return { port };
}

function sock(name: string): Sock {
  const s = sockets.get(name);
  if (s === undefined) throw new Error(`no socket ${name}`);
  return s;
}

function decode(bytes: Uint8Array): Shim6Message | undefined {
  const r = tryDecodeMessage(bytes);
  return r.ok ? r.message : undefined;
}

/** Send `bytes` every RETRY_MS until the socket's inbox holds a matching message; the message. */
async function request<M extends Shim6Message>(s: Sock, dst: string, bytes: Uint8Array, match: (m: Shim6Message) => m is M): Promise<M> {
  const deadline = performance.now() + REPLY_DEADLINE_MS;
  let seen = 0;
  while (performance.now() < deadline) {
    s.s.send(bytes, SHIM6_PORT, dst);
    const until = Math.min(deadline, performance.now() + RETRY_MS);
    while (performance.now() < until) {
      for (; seen < s.inbox.length; seen++) {
        const m = decode(s.inbox[seen]!.bytes);
        if (m !== undefined && match(m)) return m;
      }
      await sleep(10);
    }
  }
  throw new Error(`no answer from ${dst} within ${REPLY_DEADLINE_MS} ms`);
}

function proofOptions(p: HandshakeArgs['proof']): Shim6Option[] {
  if (p === undefined) return [];
  const out: Shim6Option[] = [];
  if (p.locators.length > 0) out.push({ type: 'LocatorList', critical: false, generation: p.generation, locators: p.locators });
  out.push({ type: 'CgaParameterDataStructure', critical: false, pds: new Uint8Array(Buffer.from(p.pds, 'hex')) });
  if (p.signature !== undefined) out.push({ type: 'CgaSignature', critical: false, signature: new Uint8Array(Buffer.from(p.signature, 'hex')) });
  return out;
}

/** I1 → R1 → I2 (or payload → R1bis → I2bis), then the barrier; did an R2 come back? */
async function handshake(a: HandshakeArgs): Promise<HandshakeResult> {
  const s = sock(a.sock);
  const contextTag = tag47();
  const initiatorNonce = u32();
  const identity: Shim6Option[] = [];
  if (a.claim) identity.push({ type: 'UlidPair', critical: false, senderUlid: a.claim.sender, receiverUlid: a.claim.receiver });
  if (a.fii !== undefined) identity.push({ type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: a.fii });
  const from = s.inbox.length;
  if (a.via === 'I2bis') {
    const packetContextTag = tag47();
    const probe = new Uint8Array([...encodePayloadHeader(NO_NEXT_HEADER, packetContextTag), ...new Uint8Array(8)]);
    const r1bis = await request(s, a.dst, probe, (m): m is Extract<Shim6Message, { type: 'R1bis' }> => m.type === 'R1bis' && m.packetContextTag === packetContextTag);
    const validator = r1bis.options.find((o) => o.type === 'ResponderValidator');
    if (validator === undefined) throw new Error('R1bis without a validator');
    s.s.send(encodeMessage({ type: 'I2bis', contextTag, initiatorNonce, responderNonce: r1bis.responderNonce, packetContextTag, options: [validator, ...identity, ...proofOptions(a.proof)] }), SHIM6_PORT, a.dst);
  } else {
    const i1 = encodeMessage({ type: 'I1', contextTag, initiatorNonce, options: identity });
    const r1 = await request(s, a.dst, i1, (m): m is Extract<Shim6Message, { type: 'R1' }> => m.type === 'R1' && m.initiatorNonce === initiatorNonce);
    const validator = r1.options.find((o) => o.type === 'ResponderValidator');
    if (validator === undefined) throw new Error('R1 without a validator');
    s.s.send(encodeMessage({ type: 'I2', contextTag, initiatorNonce, responderNonce: r1.responderNonce, options: [validator, ...identity, ...proofOptions(a.proof)] }), SHIM6_PORT, a.dst);
  }
  // Barrier: the daemon reads this socket's datagrams in order, so once the R1 to
  // this I1 is back, any R2 to the I2 sent before it is in the inbox too.
  const barrierNonce = u32();
  await request(s, a.dst, encodeMessage({ type: 'I1', contextTag: tag47(), initiatorNonce: barrierNonce, options: [] }),
    (m): m is Extract<Shim6Message, { type: 'R1' }> => m.type === 'R1' && m.initiatorNonce === barrierNonce);
  const r2 = s.inbox.slice(from).map((d) => decode(d.bytes)).find((m) => m?.type === 'R2' && m.initiatorNonce === initiatorNonce);
  return { r2: r2 !== undefined, contextTag, ...(r2?.type === 'R2' ? { peerContextTag: r2.contextTag } : {}) };
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).includes(Buffer.from(needle));
}

/** What socket `name` received so far: payload datagrams, control messages by type, datagrams holding `marker`. */
function inbox(a: { sock: string; marker?: string }): InboxSummary {
  const s = sock(a.sock);
  const marker = a.marker ? Buffer.from(a.marker, 'hex') : undefined;
  const out: InboxSummary = { total: s.inbox.length, payload: 0, control: {}, marker: 0 };
  for (const d of s.inbox) {
    if (isPayloadHeader(d.bytes)) out.payload++;
    else {
      const type = decode(d.bytes)?.type ?? 'malformed';
      out.control[type] = (out.control[type] ?? 0) + 1;
    }
    if (marker && contains(d.bytes, marker)) out.marker++;
  }
  return out;
}

/**
 * Start dumpcap on `iface` (promiscuous: the hub floods A↔B frames here) and
 * wait until it has seen a datagram this process sent to `readyDst`.
 */
async function capture(a: { iface: string; readyDst: string }): Promise<{ ready: true }> {
  if (dumpcap === undefined) {
    dumpcap = spawn('dumpcap', ['-i', a.iface, '-P', '-w', '-', '-q', '-f', 'udp'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stream = new PcapStream((d) => captured.push(d.payload.length > 512 ? { ...d, payload: d.payload.slice(0, 64) } : d));
    dumpcap.stdout!.on('data', (c: Buffer) => stream.push(c));
    dumpcap.stderr!.resume();
  }
  const token = randomBytes(16);
  const s = await openSocket('::', 0);
  try {
    const deadline = performance.now() + REPLY_DEADLINE_MS;
    while (performance.now() < deadline) {
      s.send(token, 9, a.readyDst);
      await sleep(200);
      if (captured.some((d) => contains(d.payload, token))) return { ready: true };
      if (dumpcap.exitCode !== null) throw new Error(`dumpcap exited (${dumpcap.exitCode})`);
    }
    throw new Error('dumpcap captured nothing');
  } finally {
    s.close();
  }
}

function matches(d: CapturedUdp, q: CaptureQuery, marker: Buffer | undefined): boolean {
  return (q.since === undefined || d.ts >= q.since) && (q.src === undefined || d.src === q.src) && (q.dstIn === undefined || q.dstIn.includes(d.dst))
    && (q.dstPort === undefined || d.dstPort === q.dstPort) && (q.srcPort === undefined || d.srcPort === q.srcPort)
    && (!q.payloadOnly || isPayloadHeader(d.payload)) && (marker === undefined || contains(d.payload, marker));
}

function capturedCount(q: CaptureQuery): { count: number; first?: string } {
  const marker = q.marker ? Buffer.from(q.marker, 'hex') : undefined;
  const hits = captured.filter((d) => matches(d, q, marker));
  return { count: hits.length, ...(hits[0] ? { first: `${hits[0].src}.${hits[0].srcPort} > ${hits[0].dst}.${hits[0].dstPort} ${hex(hits[0].payload.subarray(0, 16))}` } : {}) };
}

/** Wait until a captured datagram matches `q`. */
async function waitCaptured(q: CaptureQuery): Promise<{ count: number }> {
  const deadline = performance.now() + REPLY_DEADLINE_MS;
  while (performance.now() < deadline) {
    const r = capturedCount(q);
    if (r.count > 0) return r;
    await sleep(20);
  }
  throw new Error(`nothing captured matching ${JSON.stringify(q)} within ${REPLY_DEADLINE_MS} ms`);
}

/**
 * The receiver context tag of a captured Shim6 payload datagram from `src` to `dst` port 5533, or of
 * a Keepalive (on the kernel path no payload crosses the ULID pair; its Keepalives carry the tag).
 */
async function sniffTag(a: { src: string; dst: string; since?: number }): Promise<{ tag: number }> {
  const q: CaptureQuery = { src: a.src, dstIn: [a.dst], dstPort: SHIM6_PORT, ...(a.since !== undefined ? { since: a.since } : {}) };
  const tagOf = (d: CapturedUdp): number | undefined => {
    if (isPayloadHeader(d.payload)) return decodePayloadHeader(d.payload).contextTag;
    const m = tryDecodeMessage(d.payload);
    return m.ok && m.message.type === 'Keepalive' ? m.message.contextTag : undefined;
  };
  const deadline = performance.now() + REPLY_DEADLINE_MS;
  while (performance.now() < deadline) {
    const d = captured.findLast((x) => matches(x, q, undefined) && tagOf(x) !== undefined);
    if (d !== undefined) return { tag: tagOf(d)! };
    await sleep(20);
  }
  throw new Error(`no payload or Keepalive captured matching ${JSON.stringify(q)} within ${REPLY_DEADLINE_MS} ms`);
}

/** Known-tag packets (payload or Keepalive) from socket `sock`, `count` of them, a batch per `gapMs`. */
async function spray(a: SprayArgs): Promise<{ sent: number }> {
  const s = sock(a.sock);
  const bytes = a.kind === 'keepalive'
    ? encodeMessage({ type: 'Keepalive', contextTag: a.tag, options: [] })
    : new Uint8Array([...encodePayloadHeader(NO_NEXT_HEADER, a.tag), ...new Uint8Array(8)]);
  // A Probe (State Exploring) reports itself as sent from the socket's address, a fresh nonce each.
  const me = s.s.address().address;
  const probe = (i: number): Uint8Array => encodeMessage({ type: 'Probe', contextTag: a.tag, state: 'Exploring', sent: [{ source: me, destination: a.dst, nonce: i + 1, data: i }], received: [], options: [] });
  for (let i = 0; i < a.count; i++) {
    s.s.send(a.kind === 'probe' ? probe(i) : bytes, SHIM6_PORT, a.dst);
    if (i % a.batch === a.batch - 1) await sleep(a.gapMs);
  }
  return { sent: a.count };
}

/** Receive and send meta of the addon's batched UDP socket (native/udp.h): octets per datagram. */
const RECV_META = 40;
const SEND_META = 44;
/** Datagrams per sendmmsg. */
const FLOOD_BATCH = 64;

/**
 * A flood's packets side by side in one arena, and the send meta of one batch for the addon's
 * udpSend: datagram j goes from `sources[j % sources.length]` to `dst` port 5533 and carries
 * packet `j % packets.length`.
 */
class FloodBatch {
  readonly arena: ArrayBuffer;
  readonly meta = new ArrayBuffer(SEND_META * FLOOD_BATCH);
  private readonly offsets: number[] = [];
  private readonly bytes = new Uint8Array(this.meta);
  private readonly view = new DataView(this.meta);

  constructor(private readonly packets: readonly Uint8Array[], private readonly sources: readonly Uint8Array[], private readonly dst: Uint8Array) {
    let size = 0;
    for (const p of packets) { this.offsets.push(size); size += p.length; }
    this.arena = new ArrayBuffer(size);
    const arena = new Uint8Array(this.arena);
    packets.forEach((p, i) => arena.set(p, this.offsets[i]!));
  }

  /** The meta of datagrams `first` … `first + n − 1` (n ≤ FLOOD_BATCH). */
  fill(first: number, n: number): void {
    for (let k = 0; k < n; k++) {
      const j = first + k, m = k * SEND_META;
      this.bytes.set(this.sources[j % this.sources.length]!, m);
      this.bytes.set(this.dst, m + 16);
      this.view.setUint16(m + 32, SHIM6_PORT);
      this.view.setUint32(m + 36, this.offsets[j % this.packets.length]!, true);
      this.view.setUint32(m + 40, this.packets[j % this.packets.length]!.length, true);
    }
  }
}

/**
 * The flood: `count` I1s (fresh tags and nonces) or unknown-tag payload packets, round robin over
 * `sources`, through one socket of the project's addon (sendmmsg, each datagram from its source by
 * IPV6_PKTINFO; a reply's destination says which source it answers): a tenth of node:dgram's cost
 * per datagram, so the flood measures the daemon, not the attacker.
 */
async function flood(a: FloodArgs): Promise<FloodResult> {
  const addon = loadAddon();
  const replies: Record<string, number> = {};
  const types: Record<string, number> = {};
  for (const src of a.sources) replies[src] = 0;
  // A reply's destination in its canonical text → the source as the caller wrote it.
  const sourceOf = new Map(a.sources.map((x) => [formatIpv6(parseIpv6(x)), x]));
  let tLast = 0;
  const [fd] = addon.udpOpen(0, 4 << 20, false);
  const slot = 2048, slots = 64;
  const recv = new ArrayBuffer(slot * slots);
  const recvBytes = new Uint8Array(recv);
  const meta = new ArrayBuffer(RECV_META * slots);
  const metaBytes = new Uint8Array(meta);
  const metaView = new DataView(meta);
  const handle = addon.udpStartReader(fd, recv, slot, slots, meta, (count) => {
    for (let i = 0; i < count; i++) {
      const len = metaView.getUint32(i * RECV_META + 36, true);
      const to = sourceOf.get(formatIpv6(metaBytes, i * RECV_META + 16));
      if (len === 0 || to === undefined) continue;
      replies[to]!++;
      tLast = performance.now();
      const m = recvBytes.subarray(i * slot, i * slot + len);
      const type = m.length > 2 && (m[2]! & 0x80) === 0 ? (decode(m.slice())?.type ?? 'malformed') : 'payload';
      types[type] = (types[type] ?? 0) + 1;
    }
  });
  const packets = Array.from({ length: 1024 }, () => a.kind === 'I1'
    ? encodeMessage({ type: 'I1', contextTag: tag47(), initiatorNonce: u32(), options: [] })
    : new Uint8Array([...encodePayloadHeader(NO_NEXT_HEADER, tag47()), ...randomBytes(24)]));
  const batch = new FloodBatch(packets, a.sources.map((x) => parseIpv6(x)), parseIpv6(a.dst));
  const t0 = performance.now();
  for (let i = 0; i < a.count;) {
    const n = Math.min(FLOOD_BATCH, a.count - i);
    batch.fill(i, n);
    // What the socket refuses (its buffer full) is lost, as on the wire; the count is what was handed over.
    addon.udpSend(fd, batch.arena, batch.meta, n, false);
    i += n;
    await new Promise((r) => setImmediate(r)); // let the replies be read as they come
  }
  const tSent = performance.now();
  // Barrier from a source of its own: once its I1 is answered, the daemon has read the flood.
  await socket({ name: '_barrier', address: a.barrierSource });
  const nonce = u32();
  await request(sock('_barrier'), a.dst, encodeMessage({ type: 'I1', contextTag: tag47(), initiatorNonce: nonce, options: [] }),
    (m): m is Extract<Shim6Message, { type: 'R1' }> => m.type === 'R1' && m.initiatorNonce === nonce);
  sock('_barrier').s.close();
  sockets.delete('_barrier');
  const tBarrier = performance.now();
  await sleep(300); // replies already on their way
  addon.udpClose(handle);
  return { sent: a.count, replies, types, sendMs: tSent - t0, lastReplyMs: tLast === 0 ? 0 : tLast - t0, barrierMs: tBarrier - t0 };
}

/** The running `spoofFlood`, if any. */
let spoofing: { stop: boolean; sent: number; t0: number; done: Promise<void> } | undefined;

/**
 * Start a flood of I1s (fresh tags and nonces) at `rate` per second, round robin over `prefixes`
 * forged sources `<prefix48>:<i>::1` — one per /64 — through one socket of the addon (IPV6_PKTINFO
 * names each source: needs `net.ipv6.ip_nonlocal_bind`, Attacker.allowForgedSources), until
 * `spoofFloodStop`. The replies go where the daemon routes those prefixes; none are read here.
 */
function spoofFlood(a: SpoofFloodArgs): { started: true } {
  if (spoofing !== undefined) throw new Error('a spoofed flood is already running');
  const addon = loadAddon();
  const [fd] = addon.udpOpen(0, 4 << 20, false);
  // A reader (replies ignored) gives the socket a handle to close it by.
  const slot = 2048, slots = 8;
  const handle = addon.udpStartReader(fd, new ArrayBuffer(slot * slots), slot, slots, new ArrayBuffer(RECV_META * slots), () => undefined);
  const packets = Array.from({ length: 1024 }, () => encodeMessage({ type: 'I1', contextTag: tag47(), initiatorNonce: u32(), options: [] }));
  const batch = new FloodBatch(packets, Array.from({ length: a.prefixes }, (_, i) => parseIpv6(`${a.prefix48}:${i.toString(16)}::1`)), parseIpv6(a.dst));
  const loop = { stop: false, sent: 0, t0: performance.now(), done: Promise.resolve() };
  loop.done = (async () => {
    try {
      while (!loop.stop) {
        const due = Math.floor(((performance.now() - loop.t0) / 1000) * a.rate);
        while (loop.sent < due) {
          const n = Math.min(FLOOD_BATCH, due - loop.sent);
          batch.fill(loop.sent, n);
          // What the socket refuses (its buffer full) is lost, as on the wire; the count is what was handed over.
          addon.udpSend(fd, batch.arena, batch.meta, n, false);
          loop.sent += n;
        }
        // Every millisecond (the timers' grain): a few I1s at a time, nearly as smooth as many attackers' would be.
        await sleep(1);
      }
    } finally {
      addon.udpClose(handle);
    }
  })();
  spoofing = loop;
  return { started: true };
}

/** Stop the `spoofFlood`; how many I1s it sent, over how long. */
async function spoofFloodStop(): Promise<SpoofFloodResult> {
  const loop = spoofing;
  if (loop === undefined) throw new Error('no spoofed flood running');
  loop.stop = true;
  await loop.done;
  spoofing = undefined;
  return { sent: loop.sent, sendMs: performance.now() - loop.t0 };
}

/** The running `startClaims` loop, if any. */
let claims: { stop: boolean; sent: number; done: Promise<void> } | undefined;

/**
 * Start sending, from socket `sock` to `dst`, one I1 every `gapMs` (fresh tag and nonce each) whose
 * ULID Pair option names `claim` — the sender claims to be `claim.sender` talking to `claim.receiver`
 * (crossing I1s during the receiver's own handshake with that peer: docs/security.md) — until `stopClaims`.
 * Replies land in the socket's inbox.
 */
function startClaims(a: ClaimArgs): { started: true } {
  if (claims !== undefined) throw new Error('a claim loop is already running');
  const s = sock(a.sock);
  const option: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: a.claim.sender, receiverUlid: a.claim.receiver };
  const loop = { stop: false, sent: 0, done: Promise.resolve() };
  loop.done = (async () => {
    while (!loop.stop) {
      s.s.send(encodeMessage({ type: 'I1', contextTag: tag47(), initiatorNonce: u32(), options: [option] }), SHIM6_PORT, a.dst);
      loop.sent++;
      await sleep(a.gapMs);
    }
  })();
  claims = loop;
  return { started: true };
}

/** Stop the `startClaims` loop; how many I1s it sent. */
async function stopClaims(): Promise<{ sent: number }> {
  const loop = claims;
  if (loop === undefined) throw new Error('no claim loop running');
  loop.stop = true;
  await loop.done;
  claims = undefined;
  return { sent: loop.sent };
}

/** An SPKI of an RSA "key" with modulus `n` and exponent `e` (nothing signs with it: its signatures are random). */
function rsaSpki(n: bigint, e: bigint): Uint8Array {
  const b64u = (v: bigint): string => { let h = v.toString(16); if (h.length % 2) h = '0' + h; return Buffer.from(h, 'hex').toString('base64url'); };
  return new Uint8Array(createPublicKey({ key: { kty: 'RSA', n: b64u(n), e: b64u(e) }, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
}
const oddOfBits = (bits: number): bigint => BigInt('0x' + randomBytes(bits / 8).toString('hex')) | (1n << BigInt(bits - 1)) | 1n;

/**
 * The CGA verification flood (docs/security.md "CGA verification cost"): I2s whose PDS holds a key of
 * the attacker's choice and whose ULID is a Sec 0 CGA of it, under validators of R1s it asks for from
 * socket `sock` (a fresh one every second); the Locator List names the socket's address as a
 * CGA-method locator, and the CGA Signature is random. `keys`: 'huge-exponent' (3072-bit modulus and
 * a 3070-bit exponent, ~120 times a normal key's verification cost before the fix) or 'normal'
 * (2048 bits, e = 65537), alternating when both are given; `fresh`: a new random signature in every
 * I2 (else copies of one I2 per R1). `rate` I2s per second for `count` I2s, or until `cgaFloodStop`.
 */
let cgaFloodStop = false;

async function cgaFlood(a: CgaFloodArgs): Promise<CgaFloodResult> {
  cgaFloodStop = false;
  const s = sock(a.sock);
  const src = formatIpv6(parseIpv6(s.s.address().address));
  const pds = a.keys.map((k) => {
    const spki = k === 'normal'
      ? new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }))
      : rsaSpki(oddOfBits(3072), oddOfBits(3072) >> 2n | 1n);
    const cga = generateCga({ subnetPrefix: '2001:db8:66::/64', publicKey: spki, sec: 0, randomBytes: (n) => new Uint8Array(randomBytes(n)) });
    return { ulid: cga.address, params: cga.params, sigLength: k === 'normal' ? 256 : 384 };
  });
  let r1: Extract<Shim6Message, { type: 'R1' }>[] = [];
  const tags = pds.map(() => tag47());
  const nonces = pds.map(() => u32());
  const askR1 = async (): Promise<void> => {
    r1 = await Promise.all(pds.map((p, i) => request(s, a.dst, encodeMessage({ type: 'I1', contextTag: tags[i]!, initiatorNonce: nonces[i]!, options: [{ type: 'UlidPair', critical: false, senderUlid: p.ulid, receiverUlid: a.dst }] }),
      (m): m is Extract<Shim6Message, { type: 'R1' }> => m.type === 'R1' && m.initiatorNonce === nonces[i])));
  };
  await askR1();
  const i2 = (k: number): Uint8Array => {
    const p = pds[k]!;
    const sig = new Uint8Array(randomBytes(p.sigLength)); sig[0] = 0;
    return encodeMessage({ type: 'I2', contextTag: tags[k]!, initiatorNonce: nonces[k]!, responderNonce: r1[k]!.responderNonce, options: [
      r1[k]!.options.find((o) => o.type === 'ResponderValidator')!,
      { type: 'UlidPair', critical: false, senderUlid: p.ulid, receiverUlid: a.dst },
      { type: 'LocatorList', critical: false, generation: 1, locators: [{ address: src, verificationMethod: VerificationMethod.CGA }] },
      { type: 'CgaParameterDataStructure', critical: false, pds: p.params },
      { type: 'CgaSignature', critical: false, signature: sig },
    ] });
  };
  let fixed = pds.map((_, k) => i2(k));
  const t0 = performance.now();
  let sent = 0, lastAsk = t0, asking: Promise<void> | undefined;
  while (sent < a.count && !cgaFloodStop) {
    const due = Math.min(a.count, Math.floor(((performance.now() - t0) / 1000) * a.rate));
    for (; sent < due; sent++) {
      const k = sent % pds.length;
      s.s.send(a.fresh ? i2(k) : fixed[k]!, SHIM6_PORT, a.dst);
    }
    if (asking === undefined && performance.now() - lastAsk > 1000) {
      lastAsk = performance.now();
      asking = askR1().then(() => { fixed = pds.map((_, k) => i2(k)); asking = undefined; }, () => { asking = undefined; });
    }
    await sleep(5);
  }
  return { sent, sendMs: performance.now() - t0 };
}

/**
 * Whole IPv6 packets through the addon's IPPROTO_RAW socket (the header as given: a forged source),
 * 256 at a time with a pause between, so that the socket's queue is not what loses them.
 */
async function raw(a: RawArgs): Promise<{ sent: number }> {
  const addon = loadAddon();
  const packets = a.packets.map((h) => new Uint8Array(Buffer.from(h, 'hex')));
  let sent = 0;
  for (let r = 0; r < (a.repeat ?? 1); r++) {
    for (let i = 0; i < packets.length; i += 256) {
      const batch = packets.slice(i, i + 256);
      sent += addon.rawSend(batch, batch.length);
      await sleep(2);
    }
  }
  return { sent };
}

const OPS: Record<string, (args: never) => Promise<unknown> | unknown> = {
  socket, handshake, inbox, capture, captured: capturedCount, waitCaptured, sniffTag, spray, flood, startClaims, stopClaims, cgaFlood, spoofFlood, spoofFloodStop, raw,
  cgaFloodStop: () => { cgaFloodStop = true; return {}; },
};

createInterface({ input: process.stdin }).on('line', (line) => {
  let req: { id: number; op: string; args: unknown };
  try { req = JSON.parse(line) as typeof req; } catch { return; }
  const op = OPS[req.op];
  void (async () => {
    try {
      if (op === undefined) throw new Error(`unknown op ${req.op}`);
      const result = await op(req.args as never);
      process.stdout.write(JSON.stringify({ id: req.id, ok: true, result }) + '\n');
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: (err as Error).message }) + '\n');
    }
  })();
}).on('close', () => {
  dumpcap?.kill('SIGTERM');
  for (const s of sockets.values()) s.s.close();
  process.exit(0);
});
