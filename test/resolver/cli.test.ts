// `shim6 resolver` and `shim6 status` as a user runs them: real processes, real Knot, real dig, the control socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, statSync, existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { needs, skipOrFail } from '../helpers/prereq.ts';
import { nativeUdpStatus } from '../../resolver/udp-socket.ts';
import { BIN, shim6, shim6Async, type CliResult } from '../helpers/cli.ts';
import { waitFor, within } from '../helpers/wait.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { dig, digStatus, run } from './harness.ts';
import { zoneText, ZONE } from './zone.ts';
import { startCli, tmpdir } from './process.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { connectError, controlRequest, ControlError } from '../../shim/daemon/control/client.ts';

test('shim6 resolver serves dig, shim6 status reports counters and capability caches, SIGTERM stops it cleanly', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const dir = tmpdir(t);
  const sock = path.join(dir, 'control.sock');
  const child = spawn(process.execPath, [BIN, 'resolver', '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${auth.port}`, '--socket', sock, '--no-engine'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitFor(() => stderr.includes('resolver ready') || child.exitCode !== null, '"resolver ready"');
  assert.match(stderr, /resolver ready/, stderr);
  const port = Number(/listening address=127\.0\.0\.1 port=(\d+)/.exec(stderr)?.[1]);
  assert.ok(port > 0);
  assert.equal(statSync(sock).mode & 0o777, 0o600, 'control socket is 0600');

  const r = await dig({ host: '127.0.0.1', port }, 'peer.example.', 'AAAA');
  assert.equal(digStatus(r.stdout), 'NOERROR');
  await dig({ host: '127.0.0.1', port }, 'peer.example.', 'AAAA');
  await dig({ host: '127.0.0.1', port }, 'plain.example.', 'AAAA');
  assert.match(stderr, /capability prime name=peer\.example\./, 'the logging sink saw the prime');

  const js = await run(process.execPath, [BIN, 'status', '--json', '--socket', sock]);
  assert.equal(js.code, 0, js.stderr);
  const st = JSON.parse(js.stdout) as { resolver: { counters: Record<string, number>; capability: { positive: Array<Record<string, unknown>>; negative: Array<Record<string, unknown>> } } };
  assert.equal(st.resolver.counters.queries, 3);
  assert.equal(st.resolver.counters.hits, 1);
  assert.equal(st.resolver.counters.primes, 1);
  assert.equal(st.resolver.counters.capabilityFound, 1);
  const pos = st.resolver.capability.positive[0]!;
  assert.equal(pos.name, 'peer.example.');
  assert.equal(pos.source, 'dns');
  assert.ok((pos.ttl as number) > 0 && (pos.ttl as number) <= 120);
  assert.equal(st.resolver.capability.negative[0]?.name, 'plain.example.');

  const text = await run(process.execPath, [BIN, 'status', '--socket', sock]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /resolver capability cache \(positive, by name\): 1/);
  assert.match(text.stdout, /name=peer\.example\. source=dns ttl=\d+/);
  assert.match(text.stdout, /primes 1/);

  // The daemon's SIGHUP: nothing to reload in shim6 resolver, said so; the process keeps serving.
  child.kill('SIGHUP');
  await waitFor(() => stderr.includes('reload:') || child.exitCode !== null, 'the reload line');
  assert.match(stderr, /reload: shim6 resolver reads its configuration at start only/);
  assert.equal(digStatus((await dig({ host: '127.0.0.1', port }, 'peer.example.', 'AAAA')).stdout), 'NOERROR', 'still serving after SIGHUP');

  child.kill('SIGTERM');
  assert.equal(await within(exited, 'the resolver to exit on SIGTERM'), 0, stderr);
  assert.ok(!existsSync(sock), 'control socket removed on shutdown');
});

test('uptime is measured on the monotonic clock: after the wall clock is stepped back an hour, shim6 status says "up" a few seconds, never a negative time', async (t) => {
  // The wall clock of the process, which NTP may step: back an hour on SIGUSR2.
  const step = path.join(tmpdir(t), 'step.mjs');
  writeFileSync(step, 'const wall = Date.now; let by = 0; Date.now = () => wall() + by; process.on("SIGUSR2", () => { by = -3_600_000; });\n');
  const cli = await startCli(t, [], { ...process.env, NODE_OPTIONS: `--import ${step}` });
  process.kill(cli.pid, 'SIGUSR2');
  const js = await run(process.execPath, [BIN, 'status', '--json', '--socket', cli.sock]);
  assert.equal(js.code, 0, js.stderr);
  const { daemon } = JSON.parse(js.stdout) as { daemon: { uptimeSeconds: number } };
  assert.ok(daemon.uptimeSeconds >= 0 && daemon.uptimeSeconds < 3600, `uptimeSeconds ${daemon.uptimeSeconds}`);
  assert.equal(await cli.stop(), 0);
});

test('--log-level debug logs each query: client, name, type, rcode, and whether the cache, an upstream or the stub answered', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const cli = await startCli(t, ['--upstream', `127.0.0.1:${auth.port}`, '--log-level', 'debug']);
  const at = { host: '127.0.0.1', port: cli.port };
  for (let i = 0; i < 2; i++) assert.equal(digStatus((await dig(at, 'peer.example.', 'AAAA')).stdout), 'NOERROR');
  assert.equal(digStatus((await dig(at, '+edns=1', '+noednsneg', 'peer.example.', 'AAAA')).stdout), 'BADVERS');
  assert.equal(digStatus((await dig(at, '+tcp', 'nonexistent.example.', 'A')).stdout), 'NXDOMAIN');
  // Each line is written after its answer is sent, to a pipe: the last one may come after dig has its answer.
  const queryLines = (): string[] => cli.stderr().split('\n').filter((l) => / query client=/.test(l));
  await waitFor(() => queryLines().length >= 4, 'the four queries\' log lines');
  const lines = queryLines();
  assert.equal(lines.length, 4, cli.stderr());
  assert.match(lines[0]!, /client=127\.0\.0\.1 transport=udp name=peer\.example\. type=28 rcode=NOERROR source=upstream size=\d+/);
  assert.match(lines[1]!, /name=peer\.example\. type=28 rcode=NOERROR source=cache/);
  assert.match(lines[2]!, /rcode=BADVERS source=local/);
  assert.match(lines[3]!, /transport=tcp name=nonexistent\.example\. type=1 rcode=NXDOMAIN source=upstream/);
  // At info (the default) nothing per query.
  const quiet = await startCli(t, ['--upstream', `127.0.0.1:${auth.port}`]);
  await dig({ host: '127.0.0.1', port: quiet.port }, 'peer.example.', 'AAAA');
  assert.doesNotMatch(quiet.stderr(), / query client=/);
});

test('bad flags and config files are rejected with the field named (exit 2)', async (t) => {
  const dir = tmpdir(t);
  const write = (name: string, text: string): string => { const f = path.join(dir, name); writeFileSync(f, text); return f; };
  const maxEntries = write('bad.yaml', 'upstreams: ["127.0.0.1:53"]\ncache:\n  maxEntries: -5\n');
  const typo = write('typo.json', '{"upstreams": ["127.0.0.1:53"], "capabilty": {}}');
  const syntax = write('syntax.yaml', 'tun: { mtu: 1400\n');
  const workers0 = write('workers0.yaml', 'upstreams: ["127.0.0.1:53"]\nworkers: 0\n');
  // [command line, exit status, stderr]: each a process of its own, all at once.
  const cases: Array<[string[], number, RegExp]> = [
    [['resolver', '--config', maxEntries, '--listen', '127.0.0.1:0'], 2, /ECONFIG.*cache\.maxEntries/],
    [['resolver', '--config', typo, '--listen', '127.0.0.1:0'], 2, /capabilty: .*unknown key/],
    [['resolver', '--config', syntax, '--listen', '127.0.0.1:0'], 2, /ECONFIG: --config: .*syntax\.yaml is not YAML\/JSON: line 2, column 1: Flow map in block collection/],
    [['resolver', '--upstream', 'not-an-address', '--listen', '127.0.0.1:0'], 2, /--upstream/],
    [['resolver', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:53'], 2, /EINVALID: --upstream: invalid value "127\.0\.0\.1:53": is the stub itself/],
    [['resolver', '--upstream', '192.0.2.53:0', '--listen', '127.0.0.1:0'], 2, /EINVALID: --upstream: invalid value "192\.0\.2\.53:0": expected ADDR:PORT or \[V6\]:PORT, the port 1\.\.65535/],
    [['resolver', '--upstream', '127.0.0.1:53', '--listen', '0.0.0.0:53'], 2, /EINVALID: --upstream: invalid value "127\.0\.0\.1:53": is the stub itself/],
    [['resolver', '--log-level', 'loud', '--upstream', '127.0.0.1:53'], 2, /--log-level/],
    // A bad flag value is EINVALID naming the flag, whichever check refuses it; the same in the file is ECONFIG naming the key.
    [['resolver', '--workers', 'x', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0'], 2, /EINVALID: --workers: invalid value "x"/],
    [['resolver', '--workers', '0', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0'], 2, /EINVALID: --workers: invalid value 0: expected an integer in 1\.\.64/],
    [['resolver', '--workers', '2', '--udp', 'dgram', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0'], 2, /EINVALID: --workers: invalid value 2: more than one worker needs the native UDP backend/],
    [['resolver', '--config', workers0, '--listen', '127.0.0.1:0'], 2, /ECONFIG: workers: invalid value 0: expected an integer in 1\.\.64/],
    [['resolver', '--metrics', 'nope', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0'], 2, /EINVALID: --metrics: invalid value "nope"/],
    // The flag's mistake is EINVALID naming the flag, as shim6 daemon --manage-resolv-conf's (it was ECONFIG, and told to set a key).
    [['resolver', '--manage-resolv-conf', '--listen', '127.0.0.1:5300', '--upstream', '127.0.0.1:53'], 2,
      /^shim6: error EINVALID: --manage-resolv-conf: manage cannot name the stub at 127\.0\.0\.1:5300 in \/etc\/resolv\.conf, which has no ports: listen on port 53, or leave out --manage-resolv-conf and point the host at it another way\n$/],
    // An empty port (--shim-port "$PORT", unset) was port 0: the engine on a random port no peer knows. (The socket a
    // regular file: the old code, which took it, ended there, exit 1.)
    [['resolver', '--shim-port', '', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0', '--socket', write('not-a-socket', '')], 2, /^shim6: error EINVALID: --shim-port: invalid value "": expected a UDP port 0\.\.65535\n$/],
    [['status', '--socket', path.join(dir, 'nobody.sock')], 1, /ECONTROL_CONNECT/],
    [['flush', '--socket', path.join(dir, 'nobody.sock')], 1, /ECONTROL_CONNECT/],
  ];
  for (const [doc, key] of [['tcp: { maxUnsentBytes: 10 }', 'tcp.maxUnsentBytes'], ['tcp: { messageTimeoutMs: 0 }', 'tcp.messageTimeoutMs'],
    ['tcp: { maxConnectionsPerClient: 0 }', 'tcp.maxConnectionsPerClient'], ['capability: { maxTtlSeconds: 0 }', 'capability.maxTtlSeconds'],
    ['capability: { maxNegativeTtlSeconds: 86401 }', 'capability.maxNegativeTtlSeconds'], ['replyLimit: { global: { rate: 0 } }', 'replyLimit']] as const) {
    cases.push([['resolver', '--config', write(`${key}.yaml`, `upstreams: ["127.0.0.1:53"]\n${doc}\n`), '--listen', '127.0.0.1:0'], 2, new RegExp(`ECONFIG: ${key.replace('.', '\\.')}: invalid value`)]);
  }
  const results = await Promise.all(cases.map(([args]) => shim6Async(args)));
  cases.forEach(([args, status, stderr], i) => {
    const r = results[i]!;
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, stderr, args.join(' '));
    assert.match(r.stderr, /^shim6: error [A-Z][A-Z0-9_]*: [^\n]+\n$/, `${args.join(' ')}: one line`);
  });
});

test('shim6 flush empties every thread\'s answer and capability caches: the next lookup goes upstream and primes the peer again', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const native = (await nativeUdpStatus()).available;
  if (!native) { skipOrFail(t, 'the native UDP addon is not built (npm install builds it)'); return; }
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  interface St { counters: Record<string, number>; cache: { entries: number }; capability: { positive: unknown[]; negative: unknown[] }; workers?: { queries: number[] } }
  // One resolver thread and two, side by side.
  await Promise.all([1, 2].map(async (workers) => {
    const cli = await startCli(t, ['--workers', String(workers), '--upstream', `127.0.0.1:${auth.port}`]);
    const primes = (): number => cli.stderr().match(/capability prime name=peer\.example\./g)?.length ?? 0;
    // Status over the control socket in this process; the flush itself through the real command.
    const status = async (): Promise<St> => (await controlRequest(cli.sock, 'status') as { resolver: St }).resolver;
    const lookup = async (name: string): Promise<void> => {
      assert.equal(digStatus((await dig({ host: '127.0.0.1', port: cli.port }, name, 'AAAA')).stdout), 'NOERROR', name);
    };
    for (const name of ['peer.example.', 'peer.example.', 'plain.example.', 'alias.example.', 'bad.example.']) await lookup(name);
    let st = await status();
    assert.deepEqual([st.counters.misses, st.counters.hits, st.counters.primes], [4, 1, 1], `workers ${workers}`);
    if (workers === 2) assert.ok(st.workers!.queries.every((n) => n > 0), `both threads hold entries to flush: ${JSON.stringify(st.workers)}`);
    const cached = st.cache.entries;
    assert.ok(cached >= 4 && st.capability.positive.length >= 1 && st.capability.negative.length >= 1, JSON.stringify(st));

    const js = await run(process.execPath, [BIN, 'flush', '--json', '--socket', cli.sock]);
    assert.equal(js.code, 0, js.stderr);
    const flushed = (JSON.parse(js.stdout) as { resolver: { answers: number; capability: number; threads: number } }).resolver;
    assert.equal(flushed.answers, cached, 'every cached answer of every thread');
    assert.equal(flushed.threads, workers);
    assert.ok(flushed.capability >= st.capability.positive.length + st.capability.negative.length, js.stdout);
    st = await status();
    assert.deepEqual([st.cache.entries, st.capability.positive.length, st.capability.negative.length], [0, 0, 0], `workers ${workers}: nothing left in any thread`);
    const again = await run(process.execPath, [BIN, 'flush', '--socket', cli.sock]);
    assert.equal(again.stdout, `flushed the resolver's answer cache (0 entries) and capability cache (0 entries) on ${workers} thread${workers === 1 ? '' : 's'}; kept: the engine's capability caches and contexts\n`);

    await lookup('peer.example.');
    st = await status();
    assert.deepEqual([st.counters.misses, st.counters.hits, st.counters.primes], [5, 1, 2], `workers ${workers}: after the flush the lookup missed and primed again`);
    await waitFor(() => primes() >= 2, 'the second prime\'s log line'); // a worker thread's log line may come a moment later
    assert.equal(primes(), 2);
    assert.equal(await cli.stop(), 0, cli.stderr());
  }));
});

test('--udp picks the UDP backend and overrides the config key; status reports it; a bad value is exit 2', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const bad = shim6(['resolver', '--udp', 'quic', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /EINVALID: --udp: invalid value "quic"/);
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const conf = path.join(tmpdir(t), 'udp.yaml');
  for (const [flag, file] of [['dgram', 'native'], ['native', 'dgram']] as const) {
    writeFileSync(conf, `udp: ${file}\n`);
    const cli = await startCli(t, ['--config', conf, '--udp', flag, '--upstream', `127.0.0.1:${auth.port}`, '--no-capability']);
    assert.match(cli.stderr(), new RegExp(`listening address=127\\.0\\.0\\.1 port=\\d+ udp=${flag}`));
    const r = await dig({ host: '127.0.0.1', port: cli.port }, 'peer.example.', 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout + cli.stderr());
    const js = await run(process.execPath, [BIN, 'status', '--json', '--socket', cli.sock]);
    const st = JSON.parse(js.stdout) as { resolver: { udp: string; counters: Record<string, number> } };
    assert.equal(st.resolver.udp, flag, `--udp ${flag} wins over the file's udp: ${file}`);
    assert.equal(st.resolver.counters.udpQueries, 1);
    assert.equal(await cli.stop(), 0, cli.stderr());
  }
});

test('--workers 2: one listener port for both threads, status adds them up, SIGTERM ends both', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  if (!(await nativeUdpStatus()).available) { skipOrFail(t, 'the native UDP addon is not built (npm install builds it)'); return; }
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const cli = await startCli(t, ['--workers', '2', '--upstream', `127.0.0.1:${auth.port}`]);
  assert.match(cli.stderr(), /resolver ready .*workers=2/);
  for (const name of ['peer.example.', 'plain.example.', 'alias.example.', 'bad.example.']) {
    const r = await dig({ host: '127.0.0.1', port: cli.port }, name, 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout + cli.stderr());
  }
  const js = await run(process.execPath, [BIN, 'status', '--json', '--socket', cli.sock]);
  const st = JSON.parse(js.stdout) as { resolver: { counters: Record<string, number>; workers: { count: number; queries: number[] } } };
  assert.equal(st.resolver.workers.count, 2);
  assert.equal(st.resolver.counters.udpQueries, 4);
  assert.equal(st.resolver.workers.queries.reduce((a, b) => a + b, 0), 4);
  const text = await run(process.execPath, [BIN, 'status', '--socket', cli.sock]);
  assert.match(text.stdout, /threads 2 {2}queries per thread \d+ \d+ {2}restarts 0/);
  assert.equal(await cli.stop(), 0, cli.stderr());
});

test('without the native addon: udp native (flag or file) fails with EUDPBACKEND (exit 2); auto falls back to dgram', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  // The addon made unloadable the way a missing build is: its require() throws.
  const dir = tmpdir(t);
  const preload = path.join(dir, 'no-addon.cjs');
  writeFileSync(preload, `const Module = require('node:module');
const load = Module._load;
Module._load = function (request, ...rest) {
  if (String(request).endsWith('shim6_tun.node')) throw new Error('Cannot find module (test: addon not built)');
  return load.call(this, request, ...rest);
};
`);
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}` };
  let r = shim6(['resolver', '--udp', 'native', '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0', '--no-engine', '--socket', path.join(dir, 'a.sock')], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /error EUDPBACKEND: udp: /);
  const conf = path.join(dir, 'native.yaml');
  writeFileSync(conf, 'udp: native\n');
  r = shim6(['resolver', '--config', conf, '--upstream', '127.0.0.1:53', '--listen', '127.0.0.1:0', '--no-engine', '--socket', path.join(dir, 'b.sock')], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /EUDPBACKEND/);
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const cli = await startCli(t, ['--udp', 'auto', '--upstream', `127.0.0.1:${auth.port}`, '--no-capability'], env);
  assert.match(cli.stderr(), /native UDP unavailable, using dgram/);
  assert.match(cli.stderr(), /udp=dgram/);
  const a = await dig({ host: '127.0.0.1', port: cli.port }, 'peer.example.', 'AAAA');
  assert.equal(digStatus(a.stdout), 'NOERROR');
  assert.equal(await cli.stop(), 0, cli.stderr());
});

test('control socket: JSON lines, errors with codes, a live socket is never taken over', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'c.sock');
  const server = await startControlServer(sock, { status: () => ({ ok: 1 }), boom: () => { throw Object.assign(new Error('no'), { code: 'EBOOM' }); } });
  t.after(() => server.close());
  assert.deepEqual(await controlRequest(sock, 'status'), { ok: 1 });
  await assert.rejects(controlRequest(sock, 'nope'), (e: unknown) => e instanceof ControlError && e.code === 'EMETHOD');
  await assert.rejects(controlRequest(sock, 'boom'), (e: unknown) => e instanceof ControlError && e.code === 'EBOOM');
  // Raw: garbage line, then a pipelined pair of requests on one connection.
  const lines = await new Promise<string[]>((resolve) => {
    const c = net.connect(sock);
    let buf = '';
    c.on('data', (d) => { buf += d.toString(); if (buf.split('\n').length > 3) { c.destroy(); resolve(buf.trim().split('\n')); } });
    c.write('not json\n{"id":7,"method":"status"}\n{"method":5}\n');
  });
  const replies = lines.map((l) => JSON.parse(l) as { id: unknown; ok: boolean; error?: { code: string } });
  assert.deepEqual(replies.map((r) => r.ok ? `ok:${String(r.id)}` : r.error!.code).sort(), ['EJSON', 'EREQUEST', 'ok:7']);
  await assert.rejects(startControlServer(sock, {}), (e: unknown) => (e as { code?: string }).code === 'ECONTROL_IN_USE');
});

test('control socket refused: permission denied says the socket is root\'s, run as root; nothing listening asks whether shim6 runs', async (t) => {
  const err = (code: string): Error => Object.assign(new Error(`connect ${code} /run/x.sock`), { code });
  for (const code of ['EACCES', 'EPERM']) {
    const e = connectError('/run/x.sock', err(code));
    assert.equal(e.code, 'ECONTROL_CONNECT');
    assert.equal(e.message, `cannot connect to /run/x.sock: permission denied (${code}): the control socket is root's (mode 0600); run the command as root`);
  }
  for (const code of ['ENOENT', 'ECONNREFUSED']) {
    assert.equal(connectError('/run/x.sock', err(code)).message, `cannot connect to /run/x.sock: connect ${code} /run/x.sock (is shim6 resolver or daemon running?)`);
  }
  // The real command against a socket the control server made (0600), given to another user, run
  // as root without the capabilities that override file modes: the kernel refuses the connect as
  // it refuses a user's. (Not as user nobody: a checkout under /root is not readable by nobody.)
  if (!needs(t, { root: true, commands: ['setpriv'] })) return;
  const dir = tmpdir(t);
  const sock = path.join(dir, 'control.sock');
  const server = await startControlServer(sock, { status: () => ({}) });
  t.after(() => server.close());
  assert.equal(statSync(sock).mode & 0o777, 0o600);
  chownSync(sock, 65534, 65534);
  const withoutOverride = (args: string[]): Promise<CliResult> => new Promise((resolve) => {
    const child = spawn('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', '--', process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
  for (const cmd of [['status'], ['pcap', '--live', path.join(dir, 'never.pcap')]]) {
    const r = await withoutOverride([...cmd, '--socket', sock]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `shim6: error ECONTROL_CONNECT: cannot connect to ${sock}: permission denied (EACCES): the control socket is root's (mode 0600); run the command as root\n`, cmd.join(' '));
  }
});
