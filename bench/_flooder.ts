// The flood tool of bench/engine.ts's flood figures (not a benchmark itself:
// the leading "_" keeps it out of `npm run bench`). Runs inside the bench's own
// flood namespace, driven by JSON lines on stdin, one JSON line back per
// command on stdout:
//   {"op":"setup","sources":[…]}   one native UDP socket (sendmmsg/recvmmsg,
//                                   IPV6_PKTINFO), every source bound on it
//   {"op":"prepare","kind":"i1"|"payload","count":N,"sources":S,"dst":…,"port":5533}
//                                   encode the flood (the attacker's work, untimed)
//   {"op":"go","rate":R}            send it, R packets per second (0: as fast as
//                                   this tool can), then count the replies until
//                                   none came for QUIET_MS
// Sources are used round robin, each packet with its own random tag (and nonce).
// GSO is off, so one source and many sources cost the sender the same per packet.
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { NativeUdpTransport } from '../shim/dataplane/udp-native.ts';
import { encodeMessage, messageName, writePayloadHeader } from '../shim/wire/index.ts';
import { PAYLOAD_HEADER_LENGTH } from '../shim/constants.ts';

/** Replies are over when none came for this long after the last send. */
const QUIET_MS = 400;
/** …or at the latest this long after the last send. */
const DRAIN_MAX_MS = 15_000;
/** Octets of upper-layer payload after the payload header (RFC 5533 §5.1): more than half an R1bis. */
export const ULP_OCTETS = 24;
/** Datagrams per sendmmsg. */
const BATCH = 128;
/** Next Header of the payload packets: UDP, as if an application's datagram. */
const NEXT_HEADER_UDP = 17;

interface Prepared { srcs: string[]; dst: string; port: number; packets: Uint8Array[] }

let transport: NativeUdpTransport | undefined;
let prepared: Prepared | undefined;
let replies: Record<string, number> = {};
let lastReplyAt = 0;

const now = (): number => performance.now();

function tag(rnd: Buffer, o: number): number {
  return (rnd[o]! & 0x7f) * 2 ** 40 + rnd.readUIntBE(o + 1, 5) + 1;
}

function prepare(kind: 'i1' | 'payload', count: number, srcs: string[], dst: string, port: number): Prepared {
  const rnd = randomBytes(count * 10);
  const ulp = randomBytes(ULP_OCTETS);
  const packets: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) {
    if (kind === 'i1') {
      packets[i] = encodeMessage({ type: 'I1', contextTag: tag(rnd, i * 10), initiatorNonce: rnd.readUInt32BE(i * 10 + 6), options: [] });
    } else {
      const p = new Uint8Array(PAYLOAD_HEADER_LENGTH + ULP_OCTETS);
      writePayloadHeader(p, 0, NEXT_HEADER_UDP, tag(rnd, i * 10));
      p.set(ulp, PAYLOAD_HEADER_LENGTH);
      packets[i] = p;
    }
  }
  return { srcs, dst, port, packets };
}

/**
 * Send every prepared packet, `rate` per second (0: as fast as this tool can):
 * whatever is due goes out in sendmmsg batches of at most BATCH, with a loop
 * turn between batches so replies are read. Then drain the replies.
 */
async function go(p: Prepared, rate: number): Promise<Record<string, unknown>> {
  const t = transport!;
  replies = {};
  lastReplyAt = 0;
  const t0 = now();
  for (let i = 0; i < p.packets.length;) {
    const due = rate > 0 ? Math.min(p.packets.length, Math.floor(((now() - t0) * rate) / 1000) + 1) : p.packets.length;
    if (due <= i) { await new Promise<void>((r) => setTimeout(r, 1)); continue; }
    const end = Math.min(due, i + BATCH);
    for (; i < end; i++) t.send(p.srcs[i % p.srcs.length]!, p.dst, p.port, p.packets[i]!);
    t.flush();
    await new Promise<void>((r) => setImmediate(r));
  }
  const sentAt = now();
  for (;;) {
    await new Promise<void>((r) => setTimeout(r, 50));
    const quietSince = Math.max(sentAt, lastReplyAt);
    if (now() - quietSince >= QUIET_MS || now() - sentAt >= DRAIN_MAX_MS) break;
  }
  return { sent: p.packets.length, octets: p.packets[0]?.length ?? 0, sendMs: sentAt - t0, lastReplyMs: lastReplyAt ? lastReplyAt - t0 : 0, replies };
}

async function handle(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
  switch (cmd.op) {
    case 'setup': {
      transport = new NativeUdpTransport({ port: 0, bufferSize: 64 << 20, gso: false });
      transport.onDatagram((d) => {
        const b = d.bytes;
        const name = b.length > 2 && (b[2]! & 0x80) !== 0 ? (messageName(b[2]! & 0x7f) ?? `type ${b[2]! & 0x7f}`) : 'payload';
        replies[name] = (replies[name] ?? 0) + 1;
        lastReplyAt = now();
      });
      for (const s of cmd.sources as string[]) await transport.bind(s);
      return { ok: true, sources: transport.addresses().length };
    }
    case 'prepare':
      prepared = prepare(cmd.kind as 'i1' | 'payload', cmd.count as number, (cmd.sources as string[]), cmd.dst as string, cmd.port as number);
      return { ok: true };
    case 'go':
      if (!prepared) throw new Error('go before prepare');
      return { ok: true, ...(await go(prepared, Number(cmd.rate ?? 0))) };
    default:
      throw new Error(`unknown op ${String(cmd.op)}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let out: Record<string, unknown>;
  try {
    out = await handle(JSON.parse(line) as Record<string, unknown>);
  } catch (err) {
    out = { ok: false, error: (err as Error).message };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
await transport?.close();
