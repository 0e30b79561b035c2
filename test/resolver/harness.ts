/**
 * Test harness for the resolver: an in-process stub on an ephemeral loopback
 * port in front of real upstreams, a recording CapabilitySink, real `dig`
 * (spawned asynchronously, so the in-process stub keeps answering), and a
 * hand-written capability RDATA builder that does not share code with the codec.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import type { TestContext } from 'node:test';
import { Logger } from '../../shim/log.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';
import type { Millis } from '../../shim/time.ts';
import { configFromObject, resolveConfig } from '../../resolver/config.ts';
import { Resolver } from '../../resolver/index.ts';
import type { CapabilitySink, Ipv6Octets, RecordOctets } from '../../resolver/capability-sink.ts';
import { recordFromOctets, type CapabilityRecord } from '../../shim/wire/capability-record.ts';
import { formatIpv6Octets } from '../../shim/wire/ipv6.ts';
import type { Answer } from '../../resolver/chain.ts';
import type { ParsedQuery } from '../../resolver/message.ts';
import { nameKeyToText } from '../../resolver/message.ts';
import { DEADLINE_MS, sleep } from '../helpers/wait.ts';

export interface SinkCall { kind: 'prime' | 'absent'; name: string; ttl: number; ulid?: string; addresses?: string[]; at: bigint; record?: CapabilityRecord }

/** Records every call with a monotonic timestamp, to compare with answer times (decoded after the timestamp, as a sink would). */
export class RecordingSink implements CapabilitySink {
  readonly calls: SinkCall[] = [];
  prime(_now: Millis, octets: RecordOctets, ttlSeconds: number, nameKey: string): void {
    const at = process.hrtime.bigint();
    const record = recordFromOctets(octets);
    this.calls.push({ kind: 'prime', name: nameKeyToText(nameKey), ttl: ttlSeconds, ulid: record.ulid, at, record });
  }
  absent(_now: Millis, nameKey: string, addresses: Ipv6Octets[], ttlSeconds: number): void {
    this.calls.push({ kind: 'absent', name: nameKeyToText(nameKey), ttl: ttlSeconds, addresses: addresses.map(formatIpv6Octets), at: process.hrtime.bigint() });
  }
}

export interface SentAnswer { name: string; qtype: number; source: Answer['source']; at: bigint; transport: string }

export interface Stub {
  resolver: Resolver;
  host: string;
  port: number;
  sink: RecordingSink;
  sent: SentAnswer[];
  logs: string[];
  /** The injected clock's current value; advance with `advance`. */
  advance(ms: number): void;
}

/** Start an in-process stub with `config` (the config-file shape) in front of `upstreams`. */
export async function startStub(t: TestContext, upstreams: string[], config: Record<string, unknown> = {}): Promise<Stub> {
  let now = 1_000_000;
  const sink = new RecordingSink();
  const sent: SentAnswer[] = [];
  const logs: string[] = [];
  const file = configFromObject({ upstreams, listen: ['127.0.0.1:0'], ...config });
  const cfg = resolveConfig(file, {});
  const resolver = await Resolver.start(cfg, {
    sink,
    log: new Logger({ level: 'debug', sink: { write: (l) => { logs.push(l); } } }),
    clock: () => now as Millis,
    onAnswer: (q: ParsedQuery, a: Answer, transport) => sent.push({ name: nameKeyToText(q.nameKey), qtype: q.qtype, source: a.source, at: process.hrtime.bigint(), transport }),
  });
  t.after(() => resolver.close());
  const addr = resolver.addresses[0]!;
  return { resolver, host: addr.host, port: addr.port, sink, sent, logs, advance: (ms) => { now += ms; } };
}

export interface DigResult { code: number | null; stdout: string; stderr: string }

/** Run a real client (dig or kdig) without blocking the event loop; killed after `timeoutMs`. */
export function run(cmd: string, args: string[], timeoutMs = 2 * DEADLINE_MS): Promise<DigResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/**
 * `dig @host -p port …` with one try. dig waits 15 s for the answer: every stub answers long
 * before that, also on a loaded machine, so running out of it means no answer at all.
 */
export function dig(stub: { host: string; port: number }, ...args: string[]): Promise<DigResult> {
  return run('dig', [`@${stub.host}`, '-p', String(stub.port), '+tries=1', '+time=15', ...args]);
}

/** The status line of a dig answer, e.g. "NOERROR". */
export function digStatus(out: string): string | undefined {
  return /status: ([A-Z]+)/.exec(out)?.[1];
}

/** Answer-section lines of dig output: [name, ttl, class, type, rdata…]. */
export function digAnswers(out: string): string[][] {
  const m = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(out);
  if (!m) return [];
  return m[1]!.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/));
}

/**
 * Capability RDATA (docs/capability-record.md) built by hand for the zone: version, flags,
 * count, reserved, ULID, then per locator flags · priority · weight · reserved · address.
 */
export function capRdataHex(ulid: string, locators: string[], opts: { version?: number; params?: Uint8Array } = {}): string {
  const parts: number[] = [opts.version ?? 1, 0, locators.length, 0, ...parseIpv6(ulid)];
  locators.forEach((l, i) => parts.push(0, i, 1, 0, ...parseIpv6(l)));
  if (opts.params) parts.push(...opts.params);
  return Buffer.from(parts).toString('hex');
}

/** An RFC 3597 zone line for a capability record. */
export function capLine(owner: string, ttl: number, hex: string, type = 65300): string {
  return `${owner} ${ttl} IN TYPE${type} \\# ${hex.length / 2} ${hex}`;
}

/**
 * One query over UDP from this process, encoded and decoded by dns-packet: for
 * many quick questions, or exact bytes, without spawning dig. Rejects after `timeoutMs`.
 */
export function udpAsk(stub: { host: string; port: number }, query: Buffer, timeoutMs = 5000): Promise<{ raw: Buffer; msg: dnsPacket.Packet }> {
  const s = dgram.createSocket('udp4');
  return new Promise<{ raw: Buffer; msg: dnsPacket.Packet }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    // Only the stub's answer to this query: a late datagram of an earlier test's server to a port
    // the kernel gave this socket again is not it.
    s.on('message', (raw, from) => {
      if (from.port !== stub.port || (query.length >= 2 && (raw.length < 2 || raw[0] !== query[0] || raw[1] !== query[1]))) return;
      clearTimeout(timer);
      resolve({ raw, msg: dnsPacket.decode(raw) });
    });
    s.bind(0, '127.0.0.1', () => s.send(query, stub.port, stub.host));
  }).finally(() => s.close());
}

export { sleep };

/**
 * Wait until `cond()` holds, at most `ms` (settling after the answer is allowed when the record is late);
 * the caller then asserts what it waited for.
 */
export async function until(cond: () => boolean, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(20);
}
