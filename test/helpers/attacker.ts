/**
 * The test side of the attacker (issue 15): starts attacker-tool.ts inside the
 * lab's attacker namespace (`topologyUp(lab, { attacker: true })`), sends it
 * commands and returns its answers, typed. Also the attacker's own HBA set
 * (RFC 5535, over link P's prefix and one more), deterministic like the lab
 * hosts' sets, for claims "proven" by a set that does not hold the claimed ULID.
 *
 * Owns the tool process (stopped in t.after, and with the lab's namespaces in
 * any case). Knows nothing of the daemons: what a test asserts about A comes
 * from A (status, routes, log), not from here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { generateHbaParams, type HbaParamsFile } from '../../shim/wire/hba-params.ts';
import { LAB_PREFIX_P } from '../../lab/hba.ts';
import { LAB_IF, nsExec, type Lab } from '../../lab/topology.ts';
import type { LocatorEntry } from '../../shim/wire/index.ts';
import { ROOT } from './cli.ts';
import { treeNodeArgs } from './tree.ts';



/** A second prefix for the attacker's HBA set (it has no link there; the set only needs two prefixes). */
const ATTACKER_OTHER_PREFIX = '2001:db8:66::/64';

function seeded(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(createHash('sha256').update(`${seed}/${counter++}`).digest().subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

/** The attacker's HBA set: members[0] is on link P (its HBA address there), members[1] elsewhere. */
export const ATTACKER_HBA: HbaParamsFile = generateHbaParams({ prefixes: [LAB_PREFIX_P, ATTACKER_OTHER_PREFIX], sec: 0, randomBytes: seeded('shim6-lab-attacker') });

/** A PDS with the Locator List it proves (or claims to): what an I2 carries to prove locators. */
export interface Proof {
  /** Hex of the CGA Parameter Data Structure. */
  pds: string;
  locators: LocatorEntry[];
  generation: number;
  /** Hex of a CGA Signature over the list (RFC 5533 §5.15.5), for CGA-method locators. */
  signature?: string;
}

export interface HandshakeArgs {
  /** The tool's socket to use (see `socket`). */
  sock: string;
  /** The daemon's locator to talk to. */
  dst: string;
  /** The ULID Pair option to send; absent: none (the ULIDs are the addresses). */
  claim?: { sender: string; receiver: string };
  fii?: number;
  proof?: Proof;
  /** I1 → R1 → I2 (default) or unknown-tag payload → R1bis → I2bis. */
  via?: 'I2' | 'I2bis';
}

export interface HandshakeResult {
  /** An R2 echoing our nonce came back (the daemon made a context for the claim). */
  r2: boolean;
  /** Our context tag (the one the daemon's payload to us would carry). */
  contextTag: number;
  peerContextTag?: number;
}

export interface InboxSummary {
  total: number;
  payload: number;
  control: Record<string, number>;
  /** Datagrams holding the marker bytes. */
  marker: number;
}

/** A filter over the captured UDP datagrams (every field optional). */
export interface CaptureQuery {
  /** Captured at or after this time (ms since the epoch). */
  since?: number;
  src?: string;
  dstIn?: string[];
  srcPort?: number;
  dstPort?: number;
  /** Shim6 payload datagrams only (P bit set). */
  payloadOnly?: boolean;
  /** Hex bytes the UDP payload must contain. */
  marker?: string;
}

export interface SprayArgs {
  sock: string;
  dst: string;
  kind: 'payload' | 'keepalive' | 'probe';
  tag: number;
  count: number;
  /** Packets per batch, and the pause between batches. */
  batch: number;
  gapMs: number;
}

/** Whole IPv6 packets (header included: any source) sent through a raw socket (tool op `raw`). */
export interface RawArgs {
  /** Hex of each packet. */
  packets: string[];
  /** How many times the list is sent (default 1). */
  repeat?: number;
}

/** I1s claiming a ULID pair, one every `gapMs`, from socket `sock` to `dst` (see `startClaims`). */
export interface ClaimArgs {
  sock: string;
  dst: string;
  claim: { sender: string; receiver: string };
  gapMs: number;
}

export interface FloodArgs {
  sources: string[];
  dst: string;
  kind: 'I1' | 'payload';
  count: number;
  /** A source of its own for the barrier I1 after the flood. */
  barrierSource: string;
}

export interface FloodResult {
  sent: number;
  /** Replies received per source address. */
  replies: Record<string, number>;
  /** Replies by message type. */
  types: Record<string, number>;
  /** From the first packet sent: when the last was sent, when the last reply came, when the barrier was answered (ms). */
  sendMs: number;
  lastReplyMs: number;
  barrierMs: number;
}

/** A flood of I1s from forged sources, one per /64 (tool `spoofFlood`). */
export interface SpoofFloodArgs {
  /** The first three groups of the sources' /48 (e.g. `2001:db8:f0`): sources `<prefix48>:<i>::1`, i < `prefixes`. */
  prefix48: string;
  prefixes: number;
  dst: string;
  /** I1s per second. */
  rate: number;
}

export interface SpoofFloodResult {
  sent: number;
  sendMs: number;
}

export interface CgaFloodArgs {
  /** The tool's socket to send from (its address is the I2s' source and CGA-method locator). */
  sock: string;
  dst: string;
  /** The PDS keys, used in turn: a 3072-bit modulus with a 3070-bit exponent, or a normal 2048-bit key. */
  keys: Array<'huge-exponent' | 'normal'>;
  /** A fresh random signature in every I2; else copies of one I2 per key and R1. */
  fresh: boolean;
  /** I2s per second, and how many. */
  rate: number;
  count: number;
}

export interface CgaFloodResult {
  sent: number;
  sendMs: number;
}

/** The attacker tool running in the lab's attacker namespace. */
export class Attacker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stderr = '';

  private constructor(private readonly child: ChildProcess, readonly lab: Lab) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rep: { id: number; ok: boolean; result?: unknown; error?: string };
      try { rep = JSON.parse(line) as typeof rep; } catch { return; }
      const p = this.pending.get(rep.id);
      this.pending.delete(rep.id);
      if (rep.ok) p?.resolve(rep.result);
      else p?.reject(new Error(`attacker: ${rep.error}`));
    });
    child.stderr!.on('data', (c: Buffer) => { this.stderr = (this.stderr + c.toString()).slice(-4000); });
    child.once('exit', (code, sig) => {
      for (const p of this.pending.values()) p.reject(new Error(`attacker tool exited (${code ?? sig}): ${this.stderr.trim()}`));
      this.pending.clear();
    });
  }

  /** Start the tool in `lab.x`; stopped after the test. */
  static start(t: Pick<TestContext, 'after'>, lab: Lab): Attacker {
    const child = spawn('ip', ['netns', 'exec', lab.x, process.execPath, ...treeNodeArgs('test/helpers/attacker-tool.ts')], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
    const a = new Attacker(child, lab);
    t.after(() => a.stop());
    return a;
  }

  private call<T>(op: string, args: object): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  /** Add an address to the attacker's interface on P (nodad, usable at once). */
  addAddress(address: string, dev: string = LAB_IF.P): void {
    nsExec(this.lab.x, ['ip', '-6', 'addr', 'add', `${address}/${dev === 'lo' ? 128 : 64}`, 'dev', dev, 'nodad']);
  }

  /** Let the attacker bind to addresses it does not have (a forged source; replies go to the real owner). */
  allowForgedSources(): void {
    nsExec(this.lab.x, ['sysctl', '-q', '-w', 'net.ipv6.ip_nonlocal_bind=1']);
  }

  /** A UDP socket named `name` bound to `address` (port 0: any); its received datagrams are kept. */
  socket(name: string, address: string, port = 0): Promise<{ port: number }> {
    return this.call('socket', { name, address, port });
  }

  handshake(a: HandshakeArgs): Promise<HandshakeResult> {
    return this.call('handshake', a);
  }

  inbox(sock: string, marker?: string): Promise<InboxSummary> {
    return this.call('inbox', { sock, ...(marker ? { marker } : {}) });
  }

  /** Capture link P (every frame the hub floods); ready once a datagram sent to `readyDst` was seen. */
  capture(readyDst: string): Promise<void> {
    return this.call('capture', { iface: LAB_IF.P, readyDst });
  }

  captured(q: CaptureQuery): Promise<{ count: number; first?: string }> {
    return this.call('captured', q);
  }

  /** Wait (bounded, 30 s) until a captured datagram matches. */
  waitCaptured(q: CaptureQuery): Promise<{ count: number }> {
    return this.call('waitCaptured', q);
  }

  /** The receiver context tag of the latest payload from `src` to `dst` captured since `since` (waits, bounded). */
  async sniffTag(src: string, dst: string, since?: number): Promise<number> {
    return (await this.call<{ tag: number }>('sniffTag', { src, dst, since })).tag;
  }

  spray(a: SprayArgs): Promise<{ sent: number }> {
    return this.call('spray', a);
  }

  flood(a: FloodArgs): Promise<FloodResult> {
    return this.call('flood', a);
  }

  /**
   * Whole IPv6 packets sent as they are (an IPPROTO_RAW socket: the source is what the header says,
   * e.g. the peer's ULID), in order, `repeat` times; how many the kernel took.
   */
  raw(packets: readonly Uint8Array[], repeat = 1): Promise<{ sent: number }> {
    return this.call('raw', { packets: packets.map((p) => Buffer.from(p).toString('hex')), repeat } satisfies RawArgs);
  }

  /** Start sending I1s whose ULID Pair option names `a.claim`, one every `a.gapMs`, until `stopClaims` (replies: `inbox`). */
  startClaims(a: ClaimArgs): Promise<{ started: true }> {
    return this.call('startClaims', a);
  }

  /** Stop the claim loop; how many I1s it sent. */
  stopClaims(): Promise<{ sent: number }> {
    return this.call('stopClaims', {});
  }

  /** I2s with CGA proofs that cost their verifier (tool `cgaFlood`). */
  cgaFlood(a: CgaFloodArgs): Promise<CgaFloodResult> {
    return this.call('cgaFlood', a);
  }

  /** End a running `cgaFlood` (it then answers with what it sent). */
  cgaFloodStop(): Promise<void> {
    return this.call('cgaFloodStop', {});
  }

  /** Start I1s from forged sources in many /64s at a steady rate, until `spoofFloodStop` (see `allowForgedSources`). */
  spoofFlood(a: SpoofFloodArgs): Promise<{ started: true }> {
    return this.call('spoofFlood', a);
  }

  /** End the running `spoofFlood`: how many I1s it sent, over how long. */
  spoofFloodStop(): Promise<SpoofFloodResult> {
    return this.call('spoofFloodStop', {});
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.child.kill('SIGKILL'); resolve(); }, 3000);
      this.child.once('exit', () => { clearTimeout(timer); resolve(); });
      this.child.stdin!.end();
    });
  }
}
