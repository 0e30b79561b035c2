// Hostile text through every parser that reads text from outside: zone files
// (through the real `shim6 zone check`), TTLs, the record's text forms, TSIG
// key files, HBA parameter files, inventories, resolv.conf, the daemon's and
// the resolver's config files. Each gets long runs of exactly what its patterns
// quantify, and must answer with its typed error (asserted on `code`) or a value.
//
// No wall-clock bounds: a parser that backtracks exponentially never returns,
// one that is quadratic takes hours on the megabyte inputs below. The parsers
// run on a worker thread (or in the CLI's own process), because a regex blocks
// its thread inside one synchronous call, where node:test cannot interrupt it:
// a test's `timeout` only fires, and fails the test, when the work is elsewhere.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { shim6 } from '../helpers/cli.ts';
import { tempDir, writeZone, zoneHeader } from './zonefile.ts';
import { TESTS_COMPILED, treeModule } from '../helpers/tree.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { checkZoneText } from '../../zone-tools/zone-check.ts';
import { unescapeToken } from '../../zone-tools/master-file.ts';
import { encodeCapabilityRecord, toGenericRdata } from '../../shim/wire/capability-record.ts';

const TIMEOUT = { timeout: 60_000 };
const N = 10_000;
const DIGITS = '1'.repeat(N);
const HEX = 'a'.repeat(N);
/** For the formerly quadratic parsers: 10,000 characters take them under a second, a megabyte hours. */
const MB = 1_000_000;

/** What one call did, seen from the worker: its value, or what it threw. */
type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; classes: string[]; code: unknown; message: string };

// A CommonJS script (the form of `eval` workers). From the sources it registers
// tsx for itself, as resolver/worker-boot.mjs does, since a worker does not
// inherit the loader.
const WORKER_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  const fn = (await import(workerData.module))[workerData.fn];
  const out = [];
  for (const args of workerData.calls) {
    try { out.push({ ok: true, value: fn(...args) }); } catch (e) {
      const classes = [];
      for (let p = Object.getPrototypeOf(e); p; p = Object.getPrototypeOf(p)) classes.push(p.constructor.name);
      out.push({ ok: false, classes, code: e && e.code, message: String(e && e.message) });
    }
  }
  parentPort.postMessage(out);
})();
`;

/** Call `fn` of `module` (a source path relative to the repository) with each argument list, on a worker thread. */
function inWorker(t: TestContext, module: string, fn: string, calls: unknown[][]): Promise<Outcome[]> {
  const worker = new Worker(WORKER_SCRIPT, {
    eval: true,
    workerData: { tsx: TESTS_COMPILED ? null : import.meta.resolve('tsx/esm/api'), module: pathToFileURL(treeModule(module)).href, fn, calls },
  });
  t.after(() => worker.terminate());
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker exited (${code}) before answering`)));
  });
}

/** Every case must throw `cls` with `code`. Cases are [label, ...args]; labels name them in failures. */
async function expectCodes(t: TestContext, module: string, fn: string, cls: string, code: string, cases: [string, ...unknown[]][]): Promise<void> {
  const out = await inWorker(t, module, fn, cases.map(([, ...args]) => args));
  out.forEach((o, i) => {
    const label = cases[i]![0];
    assert.ok(!o.ok, `${label}: returned instead of throwing ${code}`);
    assert.ok(o.classes.includes(cls), `${label}: threw ${o.classes[0]}: ${o.message.slice(0, 160)}`);
    assert.equal(o.code, code, `${label}: ${o.message.slice(0, 160)}`);
  });
}

/** Line numbers of `file:line:` problems in `zone check` output. */
function problemLines(stdout: string, file: string): number[] {
  return [...new Set(stdout.split('\n').filter((l) => l.startsWith(`${file}:`)).map((l) => Number(l.slice(file.length + 1).split(':')[0])))];
}

test('zone check (the CLI) on a zone file of hostile tokens: every bad line is a problem on its line', TIMEOUT, (t) => {
  const dir = tempDir(t, 'hostile');
  // [line, is a problem]; the reported case first: 28 digits took 8 s, and each further digit doubled that.
  const lines: [string, boolean][] = [
    [`www ${DIGITS}x IN A 192.0.2.1`, true],
    [`$TTL ${DIGITS}x`, true],
    [`www ${'1h'.repeat(N / 2)}x IN A 192.0.2.1`, true],
    [`h 300 CLASS${DIGITS}x A 192.0.2.1`, false], // read as a record type named CLASS111…X, which zone check leaves alone
    [`h 300 IN ${'A'.repeat(N)}! 192.0.2.1`, true],
    [`h 300 IN TYPE65300 \\# ${DIGITS}x`, true],
    [`h 300 IN TYPE65300 \\# 5000 ${HEX}x`, true],
    [`_shim6.h 300 IN TXT "v=shim6cap1 b64=${'A'.repeat(N)}=x"`, true],
    [`h 300 IN TXT "${'\\"'.repeat(N / 2)}`, true],
    [`h 300 IN A ${'('.repeat(N)}`, true], // last: swallows the rest
  ];
  const header = zoneHeader('example.');
  const first = header.split('\n').length;
  const file = writeZone(dir, 'hostile.zone', header + lines.map(([l]) => l).join('\n') + '\n');
  const r = shim6(['zone', 'check', file]);
  assert.equal(r.status, 1, r.stderr);
  const want = lines.flatMap(([, bad], i) => (bad ? [first + i] : []));
  assert.deepEqual(problemLines(r.stdout, file).sort((a, b) => a - b), want, r.stdout.slice(0, 2000));
});

test('zone check (the CLI): $INCLUDE loops are refused and fan-out is capped', TIMEOUT, (t) => {
  const dir = tempDir(t, 'hostile');
  // Read k^8 times before: 10 self-includes, or 9 files each including the next 10 times.
  const loop = writeZone(dir, 'loop.zone', '$ORIGIN example.\n' + '$INCLUDE loop.zone\n'.repeat(10));
  for (let d = 0; d < 9; d++) writeZone(dir, `f${d}.zone`, d === 8 ? 'h 300 IN A 192.0.2.1\n' : `$INCLUDE f${d + 1}.zone\n`.repeat(10));
  const r = shim6(['zone', 'check', '--origin', 'example.', loop, path.join(dir, 'f0.zone')]);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(problemLines(r.stdout, loop), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.ok(r.stdout.split('\n').some((l) => /^.*f\d\.zone:\d+:/.test(l)), 'the capped chain reports where it stopped');
});

/**
 * The V8 heap `zone check` is given below: docs/zone-tools.md "Input bounds" promises a zone
 * at the 32 MiB bound is checked within it. The old checker kept a token, a line and a problem
 * object for every line at once: on the first file below it grew past 4 GB and died (heap OOM).
 */
const CHECK_HEAP_MB = 256;

test(`zone check (the CLI) on zones at the 32 MiB bound, worst cases, within a ${CHECK_HEAP_MB} MB heap: problems, capped`, { timeout: 180_000 }, (t) => {
  const dir = tempDir(t, 'hostile');
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=${CHECK_HEAP_MB}` };
  const run = (file: string) => shim6(['zone', 'check', '--origin', 'example.', file], { env, timeout: 170_000, maxBuffer: 64 * 1024 * 1024 });
  // The most lines, each a problem ("a" has no type): 32 MiB less 2 octets, within the bound.
  const lines = writeZone(dir, 'lines.zone', 'a\n'.repeat(16 * 1024 * 1024 - 1));
  const r = run(lines);
  assert.equal(r.status, 1, `status ${r.status}, stderr: ${r.stderr.slice(-400)}`);
  const out = r.stdout.split('\n');
  assert.equal(out.length, 1002, r.stdout.slice(-400)); // 1,000 problems, the stop, and the final newline
  assert.deepEqual(out.slice(0, 1000), Array.from({ length: 1000 }, (_, i) => `${lines}:${i + 1}: record has no type`));
  assert.equal(out[1000], `${lines}:1001: too many problems: stopped after 1000 errors; the rest of the zone is not checked`);
  assert.equal(r.stderr, `${lines}: 0 capability record(s), 0 TXT fallback(s), 1000 problem(s), stopped at ${lines}:1001 (too many problems)\n`);
  // One logical line of the whole file (parentheses), 16 million tokens: at most 140,000 are kept.
  const one = writeZone(dir, 'one.zone', '_shim6.h TXT ( ' + 'x '.repeat(16 * 1024 * 1024 - 16) + ')\n');
  const o = run(one);
  assert.equal(o.status, 1, `status ${o.status}, stderr: ${o.stderr.slice(-400)}`);
  assert.match(o.stdout, new RegExp(`^${one.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: more than 140000 tokens in one record \\(no RDATA holds that many\\); the rest are not read\n`));
});

test('zone check in process: 200,000 AAAA and 1,000 capability RRs at one owner', TIMEOUT, async (t) => {
  // Records that decode, so that each one's ULID is looked up in the AAAA RRset; 999 more records
  // (each its own: the same one again is a warning) stay under zone check's cap of 1,000 problems,
  // so the whole zone is checked.
  const rr = (i: number): string => toGenericRdata(encodeCapabilityRecord(buildHostRecord({ name: 'h.example.', ulid: '2001:db8::1', locators: [`2001:db8::1/${i % 256}/${i >> 8}`] }).record));
  const text = '$ORIGIN example.\n' + 'h 300 IN AAAA 2001:db8::1\n'.repeat(200_000) + Array.from({ length: 1000 }, (_, i) => `h 300 IN TYPE65300 ${rr(i)}\n`).join('');
  const [o] = await inWorker(t, 'zone-tools/zone-check.ts', 'checkZoneText', [[text, 'big.zone']]);
  assert.ok(o?.ok, JSON.stringify(o));
  const res = o.value as { records: number; problems: { message: string }[]; stopped?: unknown };
  assert.equal(res.records, 1000);
  assert.equal(res.stopped, undefined);
  assert.equal(res.problems.length, 999);
  assert.ok(res.problems.every((p) => p.message.startsWith('second TYPE65300 RR at h.example.')), res.problems[0]?.message);
});

test('parseTtl: digit runs ending badly are not TTLs; long good ones are', TIMEOUT, async (t) => {
  const out = await inWorker(t, 'zone-tools/master-file.ts', 'parseTtl',
    [[`${DIGITS}x`], [`${'1h'.repeat(N / 2)}x`], ['h'.repeat(N)], [`${'1'.repeat(N)}hh`], [`${'1s'.repeat(N / 2)}`], [DIGITS], [`${'0'.repeat(N)}1w`]]);
  assert.deepEqual(out.slice(0, 4), Array(4).fill({ ok: true, value: undefined }));
  assert.deepEqual(out[4], { ok: true, value: N / 2 });
  assert.deepEqual(out[5], { ok: true, value: undefined }, 'over 2^31-1: no TTL (RFC 2181 §8)');
  assert.deepEqual(out[6], { ok: true, value: 604800 });
});

test('record text forms: only WireError ESYNTAX', TIMEOUT, async (t) => {
  const rec = (extra: string): string => `v1 ulid=2001:db8::1 loc=2001:db8::1 ${extra}`;
  const text = 'shim/wire/capability-record-text.ts';
  await expectCodes(t, text, 'parseCapabilityRecord', 'WireError', 'ESYNTAX', [
    ['hba-digest hex + x', rec(`hba-digest=sha256:${HEX}x`)],
    ['hba-digest alg digits', rec(`hba-digest=alg${DIGITS}:aa`)],
    ['key odd hex', rec(`key7=${HEX}a`)],
    ['key digits', rec(`key${DIGITS}=aa`)],
    ['ulid colons', `v1 ulid=${':'.repeat(N)} loc=2001:db8::1`],
    ['prio digits', `v1 ulid=2001:db8::1 loc=2001:db8::1/prio=${DIGITS}x`],
    ['flags run', `v1 ulid=2001:db8::1 loc=2001:db8::1/flags=${'broken+'.repeat(N / 7)}x`],
    ['flags hex', `v1 ulid=2001:db8::1 loc=2001:db8::1/flags=0x${HEX}`],
    ['mandatory run', rec(`mandatory=${'key1'.repeat(N / 4)}`)],
    ['port digits', rec(`port=${DIGITS}`)],
    ['name run', `v1 ${'key'.repeat(N / 3)}=1`],
    ['whitespace run', `v1${' \t'.repeat(N / 2)}x`],
  ]);
  await expectCodes(t, text, 'capabilityTxtRdata', 'WireError', 'ESYNTAX', [
    ['b64 run + =x', `v=shim6cap1 b64=${'A'.repeat(N)}=x`],
    ['version digits', `v=shim6cap${DIGITS}`],
    ['key run without =', `v=shim6cap1 ${'a-'.repeat(N / 2)}`],
  ]);
  await expectCodes(t, text, 'fromGenericRdata', 'WireError', 'ESYNTAX', [
    ['length digits', `\\# ${DIGITS}x`],
    ['hex + x', `\\# 1 ${HEX}x`],
  ]);
});

test('TSIG key files: only UsageError ETSIG_KEY', TIMEOUT, async (t) => {
  const secret = Buffer.alloc(32, 7).toString('base64');
  const bind = (alg: string, s: string): string => `key "k" { algorithm ${alg}; secret "${s}"; };`;
  await expectCodes(t, 'zone-tools/tsig-key.ts', 'parseTsigKeyFile', 'UsageError', 'ETSIG_KEY', [
    ['unterminated /* (1 MB)', `key "a" { ${'/* '.repeat(MB / 3)}`],
    ['key blocks without } (1 MB)', 'key a {'.repeat(MB / 7)],
    ['unterminated /* (10k)', `key "a" { ${'/* '.repeat(N / 3)}`],
    ['quotes after key', `key ${'"'.repeat(N)}`],
    ['long key name, no {', `key "${'a'.repeat(N)}`],
    ['long algorithm', bind('a'.repeat(N), secret)],
    ['secret run + x', bind('hmac-sha256', `${'A'.repeat(N)}===x`)],
    ['whitespace in body', `key "k" { algorithm${' '.repeat(N)}x; secret${' '.repeat(N)}"x"; };`],
    ['bad name', `key "${'a'.repeat(N)}!" { algorithm hmac-sha256; secret "${secret}"; };`],
    ['colon form', `hmac-sha256:k:${'A'.repeat(N)}!`],
    ['colon form name', `${'a'.repeat(N)}!:${secret}`],
    ['knot yaml', `key:\n  - id: ${'a'.repeat(N)}!\n    algorithm: hmac-sha256\n    secret: ${secret}\n`],
  ]);
});

test('HBA parameter files: only UsageError EHBA_PARAMS', TIMEOUT, async (t) => {
  const doc = (o: Record<string, unknown>): string => JSON.stringify({ format: 'shim6-hba-params/1', sec: 1, publicKeyIncluded: false, publicKey: 'aa', ...o });
  const member = (o: Record<string, unknown>): { members: unknown[] } => ({ members: [{ prefix: '2001:db8::/64', address: '2001:db8::1', params: 'aa', ...o }] });
  await expectCodes(t, 'shim/wire/hba-params.ts', 'parseHbaParams', 'UsageError', 'EHBA_PARAMS', [
    ['publicKey hex + x', doc({ publicKey: `${HEX}x` })],
    ['publicKey odd', doc({ publicKey: `${HEX}a` })],
    // Was a RangeError: a capturing group per octet overflowed V8's backtrack stack.
    ['publicKey 20 MB, no members', doc({ publicKey: 'ab'.repeat(MB * 10) })],
    ['params hex + x', doc(member({ params: `${HEX}x` }))],
    ['address colons', doc(member({ address: ':'.repeat(N) }))],
    ['not JSON', `{${' '.repeat(N)}x`],
  ]);
});

test('inventories: UsageError EINVENTORY, and rows that build fail as EINVALID', TIMEOUT, async (t) => {
  const inventory = 'zone-tools/inventory.ts';
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  await expectCodes(t, inventory, 'parseInventory', 'UsageError', 'EINVENTORY', [
    ['unknown column', `name,locators,${'x'.repeat(N)}\n`],
    ['whitespace then text', `${' '.repeat(N)}x`],
    ['unterminated JSON', `[${' '.repeat(N)}`],
    // Was a RangeError from String() of a nested array.
    ['deeply nested name', `[{"name": ${deep}}]`],
    ['deeply nested locator', `[{"locators": [${deep}]}]`],
  ]);
  // A wide header times many rows was quadratic (a search of the header per cell).
  const [wide] = await inWorker(t, inventory, 'parseInventory', [['locators' + ',name'.repeat(200_000) + '\n' + '2001:db8::1\n'.repeat(200_000), 'wide.csv']]);
  assert.ok(wide?.ok && (wide.value as unknown[]).length === 200_000, JSON.stringify(wide).slice(0, 300));
  const csv = ['name,ulid,locators,ttl,port,txt',
    `${'a'.repeat(N)}!,2001:db8::1,2001:db8::1,,,`,
    `h1.example,2001:db8::1,2001:db8::1,${DIGITS}x,,`,
    `h2.example,2001:db8::1,2001:db8::1,,${DIGITS},`,
    `h3.example,2001:db8::1,2001:db8::1/${DIGITS}x,,,`,
    `h4.example,2001:db8::1,2001:db8::1/0/0/${'broken+'.repeat(N / 7)}x,,,`,
    `h5.example,${'1.'.repeat(N / 2)}1,2001:db8::1,,,${' '.repeat(N)}yes`,
    `${'a.'.repeat(N / 2)}example,2001:db8::1,${' ;'.repeat(N / 2)},,,`,
  ].join('\n');
  const [parsed] = await inWorker(t, inventory, 'parseInventory', [[csv, 'hosts.csv']]);
  assert.ok(parsed?.ok, JSON.stringify(parsed).slice(0, 300));
  const rows = parsed.value as { name: string; ulid?: string; locators: string[]; ttl?: string; port?: string }[];
  assert.equal(rows.length, 7);
  await expectCodes(t, 'zone-tools/record-input.ts', 'buildHostRecord', 'UsageError', 'EINVALID',
    rows.map((r, i) => [`row ${i + 1}`, { name: r.name, ulid: r.ulid, locators: r.locators, ttl: r.ttl, port: r.port }]));
});

test('--server and --rr-type values: only UsageError EINVALID', TIMEOUT, async (t) => {
  await expectCodes(t, 'zone-tools/dns-transport.ts', 'parseServer', 'UsageError', 'EINVALID', [
    ['bracket, no ]', `[${'a'.repeat(N)}`],
    ['bracket, port digits', `[::1]:${DIGITS}x`],
    ['host run + !', `${'a.'.repeat(N / 2)}!:53`],
  ]);
  await expectCodes(t, 'zone-tools/commands.ts', 'parseRrType', 'UsageError', 'EINVALID', [['digits', `TYPE${DIGITS}`]]);
});

test('resolv.conf: blank lines and long tokens give the default or nothing', TIMEOUT, async (t) => {
  const dir = tempDir(t, 'hostile');
  const files = ['\n'.repeat(MB), ' \n'.repeat(MB / 2), `${' '.repeat(N)}nameserver${'\t'.repeat(N)}\n`].map((text, i) => {
    const p = path.join(dir, `resolv${i}.conf`);
    writeFileSync(p, text);
    return p;
  });
  // Quadratic before: /^\s*nameserver…/m let \s* run across every blank line from every line start.
  const out = await inWorker(t, 'zone-tools/commands-dns.ts', 'systemServer', files.map((f) => [f]));
  assert.deepEqual(out, Array(files.length).fill({ ok: true, value: '127.0.0.1' }));
  const up = await inWorker(t, 'resolver/config.ts', 'upstreamsFromResolvConf',
    [['\n'.repeat(MB), []], [`nameserver ${'1.'.repeat(N / 2)}x\n`, []], [`${' '.repeat(N)}nameserver ${'f'.repeat(N)}%eth0`, []]]);
  assert.deepEqual(up, Array(3).fill({ ok: true, value: [] }));
});

test('daemon config values: only UsageError ECONFIG', TIMEOUT, async (t) => {
  await expectCodes(t, 'shim/daemon/config.ts', 'parseConfigText', 'UsageError', 'ECONFIG', [
    ['listen v4 run', `listen: ["${'1.'.repeat(N / 2)}x"]`],
    ['listen v4 digits:port', `listen: ["${DIGITS}:${DIGITS}x"]`],
    ['listen bracket colons', `listen: ["[${':'.repeat(N)}]:53"]`],
    ['listen bracket, no ]', `listen: ["[${'a'.repeat(N)}"]`],
    ['upstreams', `upstreams: ["${HEX}"]`],
    ['tun name', `tun: { name: "${'a'.repeat(N)}" }`],
    ['interfaces', `interfaces: ["${'a'.repeat(N)}"]`],
    ['peer ulid', `peers: [{ ulid: "${':'.repeat(N)}" }]`],
    ['log level', `log: "${'a'.repeat(N)}"`],
    ['unknown key', `${'a'.repeat(N)}: 1`],
    ['JSON tun name', `{"tun": {"name": "${'a'.repeat(N)}"}}`],
    // Deep nesting: the yaml package could exhaust V8's regexp stack (a process abort on the
    // third such parse) and JSON.stringify of the value in the message threw RangeError.
    ['YAML nested 100,000 deep, parsed three times', `listen: ${'['.repeat(100_000)}`],
    ['YAML nested again', `listen: ${'['.repeat(100_000)}`],
    ['YAML nested a third time', `listen: ${'{a: '.repeat(100_000)}`],
    ['JSON nested 100,000 deep', `{"listen": ${'['.repeat(100_000)}1${']'.repeat(100_000)}}`],
  ]);
});

test('resolver config values: only UsageError ECONFIG', TIMEOUT, async (t) => {
  const dir = tempDir(t, 'hostile');
  const cases: [string, string][] = [
    ['listen host:port', `listen: "${'a'.repeat(N)}:1x"`],
    ['listen digits:port', `listen: "${DIGITS}:${DIGITS}"`],
    ['upstreams bracket, no ]', `upstreams: ["[${'a'.repeat(N)}"]`],
    ['upstreams colons', `upstreams: ["${':'.repeat(N)}"]`],
    ['log level', `log: { level: "${'a'.repeat(N)}" }`],
    ['unknown key', `${'a'.repeat(N)}: 1`],
    ['YAML nested 100,000 deep', `upstreams: ${'['.repeat(100_000)}`],
    ['YAML nested again', `upstreams: ${'['.repeat(100_000)}`],
    ['YAML nested a third time', `upstreams: ${'['.repeat(100_000)}`],
  ];
  await expectCodes(t, 'resolver/config.ts', 'loadConfigFile', 'UsageError', 'ECONFIG', cases.map(([label, text], i) => {
    const p = path.join(dir, `resolver${i}.yaml`);
    writeFileSync(p, text);
    return [label, p];
  }));
});

test('a string of 300,000 characters holding an escape is read (unescapeToken joins its pieces; spread as arguments they overflowed the stack), and its problem quotes 64 characters of it', () => {
  assert.equal(unescapeToken('\\065' + 'a'.repeat(300_000))?.length, 300_001);
  const res = checkZoneText(zoneHeader('example.') + `_shim6.h IN TXT "\\065${'a'.repeat(300_000)}"\n`, 'big.zone');
  assert.deepEqual(res.problems.map((p) => p.line), [6], 'one problem, on its line');
  assert.ok(res.problems[0]!.message.length < 300, `the problem quotes a bounded part of the string: ${res.problems[0]!.message.length} characters`);
});

test('zone check: the bound of 1,000 is on errors; warnings past their own 1,000 are counted, and a zone of warnings alone passes', (t) => {
  const dir = tempDir(t);
  const gen = (n: number): string => Array.from({ length: n }, (_, i) => `$GENERATE 1-2 h${i}-$ AAAA 2001:db8::$`).join('\n') + '\n';
  const run = (name: string, body: string): { status: number | null; stdout: string } => shim6(['zone', 'check', '--quiet', '--origin', 'example.', writeZone(dir, name, zoneHeader('example.') + body)]);
  const few = run('few.zone', gen(10));
  assert.equal(few.status, 0, few.stdout.slice(0, 300));
  const many = run('many.zone', gen(1200));
  assert.equal(many.status, 0, many.stdout.split('\n').slice(-3).join('\n'));
  assert.doesNotMatch(many.stdout, /too many problems/);
  assert.equal(many.stdout.split('\n').filter((l) => l.includes(': warning: ')).length, 1000, '1,000 warnings listed');
  assert.match(many.stdout, /many\.zone: 200 more problem\(s\) not listed/);
});
