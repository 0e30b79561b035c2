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

export interface Query { id: number; name: string; type: string; raw: Buffer; from: dgram.RemoteInfo | undefined }

/** What to do with one query: reply with these messages (after `delayMs`), or nothing. */
export type Behaviour = (q: Query, transport: 'udp' | 'tcp') => Array<{ bytes: Buffer; delayMs?: number; fromOtherPort?: boolean }> | undefined;

export interface FakeUpstream { host: string; port: number; queries: Query[]; addr: string }

/** An answer to `q` with one AAAA (or A) record, built by dns-packet. */
export function answerFor(q: Query, opts: { address?: string; tc?: boolean; rcode?: number; ttl?: number; many?: number } = {}): Buffer {
  const type = q.type === 'A' ? 'A' : 'AAAA';
  const data = opts.address ?? (type === 'A' ? '192.0.2.1' : '2001:db8::1');
  const answers = opts.tc || opts.rcode ? [] : Array.from({ length: opts.many ?? 1 }, (_, i) => ({
    name: q.name, type, class: 'IN' as const, ttl: opts.ttl ?? 300,
    data: opts.many ? (type === 'A' ? `192.0.2.${i % 250}` : `2001:db8::${(i + 1).toString(16)}`) : data,
  }));
  return dnsPacket.encode({
    id: q.id, type: 'response',
    // dns-packet encodes RCODE only through the low 4 bits of `flags`.
    flags: (opts.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (opts.rcode ?? 0),
    questions: [{ name: q.name, type: q.type as 'A', class: 'IN' }],
    answers: answers as dnsPacket.Answer[],
  } as dnsPacket.Packet);
}

export async function startFakeUpstream(t: TestContext, behaviour: Behaviour): Promise<FakeUpstream> {
  const queries: Query[] = [];
  const udp = dgram.createSocket('udp4');
  const other = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
  const port = udp.address().port;
  udp.setRecvBufferSize(4 * 1024 * 1024);
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const tm = setTimeout(() => { timers.delete(tm); fn(); }, ms);
    timers.add(tm);
  };
  const parse = (raw: Buffer, from: dgram.RemoteInfo | undefined): Query | undefined => {
    try {
      const p = dnsPacket.decode(raw);
      const q = p.questions?.[0];
      return q ? { id: p.id ?? 0, name: q.name, type: q.type, raw, from } : undefined;
    } catch { return undefined; }
  };
  udp.on('message', (raw, rinfo) => {
    const q = parse(raw, rinfo);
    if (!q) return;
    queries.push(q);
    for (const r of behaviour(q, 'udp') ?? []) {
      later(r.delayMs ?? 0, () => (r.fromOtherPort ? other : udp).send(r.bytes, rinfo.port, rinfo.address));
    }
  });
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
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
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
