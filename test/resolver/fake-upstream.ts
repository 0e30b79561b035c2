/**
 * A tiny programmable upstream for the cases a real authoritative server will
 * not produce on demand: TC over UDP with the full answer over TCP, silence (a
 * black hole), slowness, forged answers from another port, garbage, SERVFAIL.
 * Built on dns-packet; loopback only; closed by the test's `t.after`.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { TestContext } from 'node:test';
import * as dnsPacket from 'dns-packet';

/**
 * A query as received. `name` is lowercased (the stub asks in 0x20 mixed case);
 * `raw` keeps the case, which answerFor echoes as a real server does.
 */
export interface Query { id: number; name: string; type: string; raw: Buffer; from: dgram.RemoteInfo | undefined }

/** What to do with one query: reply with these messages (after `delayMs`), or nothing. */
export type Behaviour = (q: Query, transport: 'udp' | 'tcp') => Array<{ bytes: Buffer; delayMs?: number; fromOtherPort?: boolean }> | undefined;

export interface FakeUpstream { host: string; port: number; queries: Query[]; addr: string }

/**
 * An answer to `q` with one AAAA (or A) record, built by dns-packet. Its question
 * keeps the letter case of the query (`raw`) when the name is the one asked, as a
 * real server's does; `echoCase: false` sends it lowercased (an upstream that
 * does not preserve case). `flags` replaces the header flags (QR, RD, RA, TC by
 * `tc`, RCODE by `rcode`); `additionals` are written as given, OPT included.
 */
export function answerFor(q: Query, opts: {
  address?: string; tc?: boolean; rcode?: number; ttl?: number; many?: number; echoCase?: boolean; flags?: number; additionals?: dnsPacket.Answer[];
} = {}): Buffer {
  const type = q.type === 'A' ? 'A' : 'AAAA';
  const data = opts.address ?? (type === 'A' ? '192.0.2.1' : '2001:db8::1');
  const answers = opts.tc || opts.rcode ? [] : Array.from({ length: opts.many ?? 1 }, (_, i) => ({
    name: q.name, type, class: 'IN' as const, ttl: opts.ttl ?? 300,
    data: opts.many ? (type === 'A' ? `192.0.2.${i % 250}` : `2001:db8::${(i + 1).toString(16)}`) : data,
  }));
  const out = dnsPacket.encode({
    id: q.id, type: 'response',
    // dns-packet encodes RCODE only through the low 4 bits of `flags`.
    flags: (opts.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) | (opts.flags ?? dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE) | (opts.rcode ?? 0),
    questions: [{ name: q.name, type: q.type as 'A', class: 'IN' }],
    answers: answers as dnsPacket.Answer[],
    ...(opts.additionals ? { additionals: opts.additionals } : {}),
  } as dnsPacket.Packet);
  if (opts.echoCase !== false) echoCase(out, q.raw);
  return out;
}

/**
 * Copy the question name's octets of `query` over those of `answer` when they are
 * the same name (both start at offset 12, uncompressed). dns-packet writes owner
 * names in full, not as pointers to the question, so they keep the lower case.
 */
function echoCase(answer: Buffer, query: Buffer): void {
  let end = 12;
  while (end < query.length && query[end]! !== 0) end += query[end]! + 1;
  if (end >= answer.length) return;
  if (query.subarray(12, end).toString('latin1').toLowerCase() !== answer.subarray(12, end).toString('latin1').toLowerCase()) return;
  query.copy(answer, 12, 12, end);
}

export async function startFakeUpstream(t: TestContext, behaviour: Behaviour): Promise<FakeUpstream> {
  const queries: Query[] = [];
  const other = dgram.createSocket('udp4');
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const tm = setTimeout(() => { timers.delete(tm); fn(); }, ms);
    timers.add(tm);
  };
  const parse = (raw: Buffer, from: dgram.RemoteInfo | undefined): Query | undefined => {
    try {
      const p = dnsPacket.decode(raw);
      const q = p.questions?.[0];
      return q ? { id: p.id ?? 0, name: q.name.toLowerCase(), type: q.type, raw, from } : undefined;
    } catch { return undefined; }
  };
  const onUdp = (raw: Buffer, rinfo: dgram.RemoteInfo): void => {
    const q = parse(raw, rinfo);
    if (!q) return;
    queries.push(q);
    for (const r of behaviour(q, 'udp') ?? []) {
      later(r.delayMs ?? 0, () => (r.fromOtherPort ? other : udp).send(r.bytes, rinfo.port, rinfo.address));
    }
  };
  const tcp = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('error', () => c.destroy());
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const raw = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + raw.length);
        const q = parse(Buffer.from(raw), undefined);
        if (!q) continue;
        queries.push(q);
        for (const r of behaviour(q, 'tcp') ?? []) {
          later(r.delayMs ?? 0, () => { if (!c.destroyed) c.write(Buffer.concat([Buffer.from([r.bytes.length >> 8, r.bytes.length & 0xff]), r.bytes])); });
        }
      }
    });
  });
  // UDP and TCP on one port: the UDP port the kernel picks may be taken for TCP by another test (pick again).
  let udp!: dgram.Socket;
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    port = udp.address().port;
    const listened = await new Promise<boolean>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => { if (err.code === 'EADDRINUSE' && attempt < 20) resolve(false); else reject(err); };
      tcp.once('error', onError);
      tcp.listen(port, '127.0.0.1', () => { tcp.off('error', onError); resolve(true); });
    });
    if (listened) break;
    udp.close();
  }
  udp.setRecvBufferSize(4 * 1024 * 1024);
  udp.on('message', onUdp);
  t.after(() => {
    for (const tm of timers) clearTimeout(tm);
    udp.close();
    other.close();
    tcp.close();
  });
  return { host: '127.0.0.1', port, queries, addr: `127.0.0.1:${port}` };
}

/** A UDP socket that never answers: a black-hole upstream. */
export async function startBlackHole(t: TestContext): Promise<FakeUpstream> {
  return startFakeUpstream(t, () => undefined);
}
