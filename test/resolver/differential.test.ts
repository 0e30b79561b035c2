// The stub side by side with unbound (the reference), both forwarding to one real Knot:
// several hundred questions over UDP and TCP, without EDNS and with payload sizes 512/1232/4096,
// DO, CD, RD=0, an unknown EDNS option and mixed-case names, sent by dnspython
// (fixtures/dns-client.py). Where the RFCs fix the answer — header flags, RCODE, the
// question as asked, the records, the negative answer's SOA, the OPT — the two must agree.
// Knot advertises 4096 octets in its OPT, so an upstream OPT relayed by the stub would show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs, skipOrFail } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { startUnbound } from '../helpers/unbound.ts';
import { SimRng } from '../helpers/rng.ts';
import { startStub } from './harness.ts';
import { zoneText } from './zone.ts';

const CLIENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/dns-client.py');
/** The stub's own EDNS payload size (answer-build.ts DEFAULT_EDNS_SIZE), configured for unbound too. */
const OWN_SIZE = 1232;
const QUESTIONS = 400;
const UNKNOWN_OPTION: [number, string] = [65001, 'c0ffee'];
/** Differences listed in a failure message. */
const SHOWN = 40;

interface Spec { host: string; port: number; name: string; type: number; tcp: boolean; edns: number | null; do: boolean; cd: boolean; rd: boolean; options: Array<[number, string]> }
interface Rr { name: string; type: number; class: number; ttl: number; rdata: string }
interface Reply {
  error?: string; flags: number; opcode: number; rcode: number; question: [string, number] | null;
  answer: Rr[]; authority: Rr[]; additional: Rr[];
  opt: { payload: number; version: number; do: boolean; z: number; options: Array<[number, string]> } | null;
}

const FLAG = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, Z: 0x0040, AD: 0x0020, CD: 0x0010 };
const FLAG_NAMES = Object.entries(FLAG);
const flagText = (f: number): string => FLAG_NAMES.filter(([, b]) => f & b).map(([n]) => n).join(' ') || '-';

/** A Python with dnspython: Debian's (where python3-dnspython installs), else whatever `python3` is. */
function dnspython(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(py, ['-c', 'import dns.message, dns.query, dns.edns'], { stdio: 'ignore' }).status === 0) return py;
  }
  return undefined;
}

/** Send every spec through one client process (asynchronously: the stub runs in this process). */
function ask(py: string, specs: Spec[]): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(py, [CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l);
      if (code !== 0 || lines.length !== specs.length) reject(new Error(`dns-client exited ${code} after ${lines.length}/${specs.length} answers: ${err}`));
      else resolve(lines.map((l) => JSON.parse(l) as Reply));
    });
    child.stdin.end(specs.map((s) => JSON.stringify(s)).join('\n') + '\n');
  });
}

/** The name with each letter in a random case. */
function mixCase(name: string, rnd: () => number): string {
  return [...name].map((c) => (rnd() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
}

const QUESTION_SET: Array<[string, number]> = [
  ['peer.example.', 1], ['peer.example.', 28], ['plain.example.', 28], ['alias.example.', 28], ['nope.example.', 28],
  ['plain.example.', 15], ['big.example.', 16], ['mid.example.', 16], ['unknown.example.', 65432], ['example.', 6],
  ['example.', 2], ['mx.example.', 15], ['x.wild.example.', 28], ['peer.example.', 65300],
];

/** The zone of the other resolver tests plus an MX, a wildcard and a ~900-octet TXT (fits 1232, not 512). */
function zone(): string {
  return zoneText() + ['mx 300 IN MX 10 peer', '*.wild 300 IN AAAA 2001:db8:77::1', ...Array.from({ length: 4 }, (_, i) => `mid 300 IN TXT "${i}${'y'.repeat(200)}"`)].join('\n') + '\n';
}

const rrKey = (r: Rr): string => `${r.name} ${r.type} ${r.class} ${r.rdata}`;
const same = (a: Rr[], b: Rr[]): boolean => JSON.stringify(a.map(rrKey)) === JSON.stringify(b.map(rrKey));

/** What RFC 1035 §4.1.1, RFC 4035 §3.2.2 and RFC 6891 §6.1.1/§7 require of any recursive answer to `s`. */
function rfcProblems(s: Spec, r: Reply): string[] {
  const p: string[] = [];
  if (!(r.flags & FLAG.QR)) p.push('QR clear');
  if (r.flags & FLAG.AA) p.push('AA set (a recursive stub is not the authority)');
  if (!(r.flags & FLAG.RA)) p.push('RA clear');
  if (r.flags & FLAG.Z) p.push('Z set');
  if (Boolean(r.flags & FLAG.RD) !== s.rd) p.push('RD not copied from the query');
  if (Boolean(r.flags & FLAG.CD) !== s.cd) p.push('CD not copied from the query');
  if (r.question?.[0] !== s.name) p.push(`question ${r.question?.[0]} is not the name asked`);
  if (s.edns === null && r.opt) p.push('OPT in an answer to a query without one');
  if (s.edns !== null && !r.opt) p.push('no OPT in an answer to a query with one');
  if (r.opt && s.edns !== null) {
    if (r.opt.payload !== OWN_SIZE) p.push(`OPT payload ${r.opt.payload}, not the resolver's own ${OWN_SIZE}`);
    if (r.opt.version !== 0) p.push(`OPT version ${r.opt.version}`);
    if (r.opt.do !== s.do) p.push('DO not copied from the query');
    for (const [code] of r.opt.options) if (code !== 15) p.push(`EDNS option ${code} relayed`);
  }
  return p;
}

/** Where the stub's answer differs from unbound's in what the RFCs fix. */
function differences(s: Spec, stub: Reply, ub: Reply): string[] {
  const d: string[] = [];
  // unbound ORs the RD of its cached upstream answer into the answer to an RD=0 query (its
  // answer_from_cache keeps rep->flags); RFC 1035 §4.1.1 says RD is copied from the query, which
  // rfcProblems checks for the stub, so RD is not compared there.
  const mask = s.rd ? 0xffff : ~FLAG.RD;
  if ((stub.flags & mask) !== (ub.flags & mask)) d.push(`flags stub [${flagText(stub.flags)}] unbound [${flagText(ub.flags)}]`);
  if (stub.rcode !== ub.rcode) d.push(`rcode stub ${stub.rcode} unbound ${ub.rcode}`);
  if (stub.opcode !== ub.opcode) d.push('opcode');
  if (JSON.stringify(stub.question) !== JSON.stringify(ub.question)) d.push(`question stub ${JSON.stringify(stub.question)} unbound ${JSON.stringify(ub.question)}`);
  if (JSON.stringify(stub.opt) !== JSON.stringify(ub.opt)) d.push(`OPT stub ${JSON.stringify(stub.opt)} unbound ${JSON.stringify(ub.opt)}`);
  // A truncated answer's sections are whatever fitted: only its header and OPT are compared.
  if (!(stub.flags & FLAG.TC) && !(ub.flags & FLAG.TC)) {
    if (!same(stub.answer, ub.answer)) d.push(`answer stub ${stub.answer.map(rrKey).join('; ')} | unbound ${ub.answer.map(rrKey).join('; ')}`);
    // RFC 2308 §3: a negative answer carries the zone's SOA (the rest of the authority section is optional).
    const soa = (r: Reply): Rr[] => r.authority.filter((x) => x.type === 6);
    if (stub.answer.length === 0 && !same(soa(stub), soa(ub))) d.push(`negative-answer SOA stub ${soa(stub).map(rrKey).join('; ')} | unbound ${soa(ub).map(rrKey).join('; ')}`);
  }
  for (const x of [...stub.answer, ...stub.authority]) if (x.ttl > 300) d.push(`TTL ${x.ttl} above the zone's`);
  return d;
}

test('differential: the stub answers as unbound does where the RFCs fix the answer (UDP/TCP, EDNS sizes, DO, CD, RD=0, unknown option, mixed case)', async (t) => {
  if (!needs(t, { commands: ['knotd', 'unbound', 'kdig'] })) return;
  const py = dnspython();
  if (!py) { skipOrFail(t, 'missing prerequisite: dnspython (Debian python3-dnspython)'); return; }
  // Knot's own OPT says 4096: a relayed upstream OPT would show in the stub's answers.
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: 'example.', text: zone() }], ipv6: false, knotServer: ['udp-max-payload: 4096'] });
  t.after(() => auth.stop());
  const ub = await startUnbound(auth.port, {
    // A plain forwarder: no validator, no 0x20, minimal responses, RD=0 answered from cache.
    server: ['  minimal-responses: yes', `  edns-buffer-size: ${OWN_SIZE}`, '  use-caps-for-id: no', '  access-control: 127.0.0.0/8 allow_snoop'],
    probe: 'example.',
  });
  t.after(() => ub.stop());
  const stub = await startStub(t, [`127.0.0.1:${auth.port}`]);
  const servers = { stub: stub.port, unbound: ub.port };
  const base = { host: '127.0.0.1', tcp: false, edns: OWN_SIZE, options: [] as Array<[number, string]> };

  // Knot itself: the OPT the stub must not relay.
  const [direct] = await ask(py, [{ ...base, port: auth.port, name: 'peer.example.', type: 1, do: false, cd: false, rd: false }]);
  assert.equal(direct?.opt?.payload, 4096, `Knot's own OPT: ${JSON.stringify(direct)}`);
  assert.ok(direct!.flags & FLAG.AA, 'Knot answers as the authority');

  // Warm unbound's cache (RD=0 questions are answered from it), with and without CD and DO.
  const warm: Spec[] = [];
  for (const [name, type] of QUESTION_SET) {
    for (const cd of [false, true]) for (const d of [false, true]) for (const port of Object.values(servers)) warm.push({ ...base, port, name, type, do: d, cd, rd: true });
  }
  await ask(py, warm);

  const rng = new SimRng(0x5eed16);
  const rnd = (): number => rng.float();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const specs: Array<{ stub: Spec; unbound: Spec }> = [];
  for (let i = 0; i < QUESTIONS; i++) {
    const [name, type] = pick(QUESTION_SET);
    const edns = pick([null, 512, 1232, 4096] as const);
    const q = {
      ...base, name: rnd() < 0.5 ? mixCase(name, rnd) : name, type, tcp: rnd() < 0.3, edns,
      do: edns !== null && rnd() < 0.5, cd: rnd() < 0.5, rd: rnd() < 0.7,
      options: edns !== null && rnd() < 0.3 ? [UNKNOWN_OPTION] : [],
    };
    specs.push({ stub: { ...q, port: servers.stub }, unbound: { ...q, port: servers.unbound } });
  }
  const replies = await ask(py, specs.flatMap((s) => [s.stub, s.unbound]));

  const problems: string[] = [];
  const covered = { tcp: 0, noEdns: 0, tc: 0, do: 0, cd: 0, rd0: 0, option: 0, mixed: 0, negative: 0 };
  specs.forEach((s, i) => {
    const a = replies[2 * i]!;
    const b = replies[2 * i + 1]!;
    const q = s.stub;
    const what = `${q.name} ${q.type} ${q.tcp ? 'tcp' : 'udp'} edns=${q.edns} do=${q.do} cd=${q.cd} rd=${q.rd}${q.options.length ? ' +option' : ''}`;
    if (a.error || b.error) { problems.push(`${what}: stub ${a.error ?? 'ok'}, unbound ${b.error ?? 'ok'}`); return; }
    for (const p of [...rfcProblems(q, a).map((x) => `stub: ${x}`), ...differences(q, a, b)]) problems.push(`${what}: ${p}`);
    covered.tcp += +q.tcp; covered.noEdns += +(q.edns === null); covered.tc += +Boolean(a.flags & FLAG.TC); covered.do += +q.do;
    covered.cd += +q.cd; covered.rd0 += +!q.rd; covered.option += +(q.options.length > 0); covered.mixed += +(q.name !== q.name.toLowerCase());
    covered.negative += +(a.answer.length === 0 && !(a.flags & FLAG.TC));
  });
  t.diagnostic(`${specs.length} questions, each to both: ${JSON.stringify(covered)}`);
  for (const [k, n] of Object.entries(covered)) assert.ok(n >= 10, `too few questions with ${k}: ${n}`);
  assert.deepEqual(problems.slice(0, SHOWN), [], `${problems.length} differences; the first ${SHOWN} are shown`);
});
