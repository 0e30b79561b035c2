// The compiled `shim6` (bin/shim6.js on dist/) does what an installed user runs:
// --version, the wire and zone tools, node's flags from bin/shim6.js's first
// line (executed as the installed command is), `shim6 resolver` on resolver threads
// (dist/resolver/worker-boot.mjs) with `status` and `flush` against it, and
// the lab's stream tool as the compiled lab starts it. A build that lost a
// file, kept a `.ts` import or a source-relative path fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { builtShim6, ROOT } from '../helpers/cli.ts';
import { fromSources, moduleFile, nodeArgs, packageRoot, programsFromSources, SHIM6_V8_FLAGS, shim6NodeArgs } from '../../shim/runtime-paths.ts';
import { requireBuilt, spawnBuilt, tmpdir, track, waitFor } from './built.ts';
import { TESTS_COMPILED } from '../helpers/tree.ts';
import { needs } from '../helpers/prereq.ts';
import { schemaProblems } from '../../shim/daemon/status-schema.ts';

const DIST = path.join(ROOT, 'dist');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? jsFiles(path.join(dir, e.name)) : /\.m?js$/.test(e.name) ? [path.join(dir, e.name)] : []));
}

test('dist/ imports no .ts file and no tsx (but worker-boot.mjs, in its branch for the sources)', () => {
  requireBuilt();
  const files = jsFiles(DIST);
  assert.ok(files.length > 100, `${files.length} files in dist/`);
  const offenders: string[] = [];
  for (const f of files) {
    if (path.relative(DIST, f) === 'resolver/worker-boot.mjs') continue;
    const text = readFileSync(f, 'utf8');
    if (/(?:from\s*|import\s*\(\s*)["'][^"']+\.ts["']/.test(text)) offenders.push(`${path.relative(ROOT, f)}: .ts import`);
    if (/(?:from\s*|import\s*\(\s*)["']tsx(?:\/[^"']*)?["']/.test(text)) offenders.push(`${path.relative(ROOT, f)}: imports tsx`);
  }
  assert.deepEqual(offenders, []);
  const boot = readFileSync(path.join(DIST, 'resolver/worker-boot.mjs'), 'utf8');
  assert.match(boot, /existsSync\(new URL\('\.\/worker\.js'/, 'worker-boot.mjs loads worker.js when compiled');
});

test('each program in dist/ is bundled: it imports only node built-ins and its own chunks, and its modules find their files from their own places', () => {
  requireBuilt();
  const chunks: string[] = [];
  for (const program of ['cli/entry.js', 'lab/stream.js', 'lab/http.js', 'resolver/worker.js']) {
    const dir = path.dirname(path.join(DIST, program));
    const own = new RegExp(`^\\./${path.basename(program, '.js')}-[A-Z0-9]+\\.js$`);
    const files = [path.join(DIST, program), ...readdirSync(dir).filter((f) => own.test(`./${f}`)).map((f) => path.join(dir, f))];
    chunks.push(...files);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      const specifiers = [...text.matchAll(/(?:^|[;\n])\s*(?:import|export)\s[^"'\n]*?["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)].map((m) => m[1] ?? m[2] ?? '');
      assert.deepEqual(specifiers.filter((x) => !x.startsWith('node:') && !/^[a-z_]+$/.test(x) && !own.test(x)), [], `${path.relative(DIST, f)} imports only built-ins and its program's chunks`);
      // A bundle's own import.meta.url serves only its require() for the CommonJS dependencies.
      const rest = text.replace(/new URL\("[^"]+", import\.meta\.url\)\.href/g, '').replace('shim6CreateRequire(import.meta.url)', '');
      assert.doesNotMatch(rest, /\bimport\.meta\.url\b/, `${path.relative(DIST, f)}: every module's import.meta.url is its own`);
    }
  }
  assert.ok(chunks.some((f) => readFileSync(f, 'utf8').includes('new URL("./worker-boot.mjs", new URL("../resolver/workers.js", import.meta.url).href)')), 'the resolver finds worker-boot.mjs next to its own module');
});

test('shim6 --version (built) prints the package version; --help lists every command', () => {
  requireBuilt();
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const v = builtShim6(['--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = builtShim6(['--help']);
  assert.equal(h.status, 0, h.stderr);
  for (const c of ['decode', 'encode', 'pcap', 'zone', 'resolver', 'status', 'flush', 'daemon', 'service', 'lab']) assert.match(h.stdout, new RegExp(`\\n  ${c}\\b`), c);
});

test('the built wire and zone tools: decode, encode, zone record, zone hba and verify, zone check', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'built-');
  const hex = '3b0101009e73123456789abc11111111';
  const d = builtShim6(['decode', hex]);
  assert.equal(d.status, 0, d.stderr);
  assert.equal(builtShim6(['encode', d.stdout]).stdout.trim(), hex);
  const rec = builtShim6(['zone', 'record', '--name', 'host.example.org.', '--ulid', '2001:db8:1::10', '--locator', '2001:db8:1::10/0/10', '--locator', '2001:db8:2::10/1/5', '--txt']);
  assert.equal(rec.status, 0, rec.stderr);
  assert.match(rec.stdout, /^host\.example\.org\.\s+\d+\s+IN\s+TYPE65300\s+\\# \d+ [0-9a-f]+$/m);
  const params = path.join(dir, 'hba.json');
  const hba = builtShim6(['zone', 'hba', '--prefix', '2001:db8:1::/64', '--prefix', '2001:db8:2::/64', '--sec', '0', '--out', params]);
  assert.equal(hba.status, 0, hba.stderr);
  const first = hba.stdout.split('\n')[0]!.trim();
  assert.equal(builtShim6(['zone', 'hba', 'verify', first, params]).status, 0);
  const zone = path.join(dir, 'example.org.zone');
  const header = '$ORIGIN example.org.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 3600\n@ IN NS ns1\nns1 IN AAAA 2001:db8::53\n';
  writeFileSync(zone, header + rec.stdout);
  const check = builtShim6(['zone', 'check', zone]);
  assert.equal(check.status, 0, check.stdout + check.stderr);
});

test('bin/shim6.js, executed as the installed command is, runs node with SHIM6_V8_FLAGS (its first line)', { timeout: 120_000 }, async (t) => {
  requireBuilt();
  const bin = path.join(ROOT, 'bin/shim6.js');
  assert.equal(readFileSync(bin, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${SHIM6_V8_FLAGS.join(' ')}`);
  // The kernel reads that line: the resolver's own process then has node's flags on its command line.
  const p = track(t, spawn(bin, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', path.join(tmpdir(t, 'shebang-'), 'control.sock')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => {
    if (p.status() !== undefined) throw new Error(`bin/shim6.js resolver exited (${String(p.status())}): ${p.out()}`);
    return p.out().includes('resolver ready');
  }, 'resolver ready');
  const argv = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8').split('\0');
  assert.deepEqual(argv.slice(1, 1 + SHIM6_V8_FLAGS.length + 1), [...SHIM6_V8_FLAGS, bin], argv.join(' '));
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
});

test('shim6 resolver (built) on two threads; shim6 status and flush (built) against it', { timeout: 120_000 }, async (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'built-');
  const sock = path.join(dir, 'control.sock');
  const p = spawnBuilt(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--udp', 'native', '--workers', '2', '--socket', sock]);
  await waitFor(() => {
    if (p.status() !== undefined) throw new Error(`shim6 resolver exited (${String(p.status())}): ${p.out()}`);
    return p.out().includes('resolver ready');
  }, 'resolver ready');
  assert.match(p.out(), /resolver ready .*udp=native workers=2/);
  const st = builtShim6(['status', '--json', '--socket', sock]);
  assert.equal(st.status, 0, st.stderr);
  assert.ok((JSON.parse(st.stdout) as { resolver?: unknown }).resolver, st.stdout);
  // The documented schema (docs/status.md) holds for shim6 resolver's reply too, its `daemon` object included.
  assert.deepEqual(schemaProblems(JSON.parse(st.stdout)), []);
  const text = builtShim6(['status', '--socket', sock]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /resolver/);
  assert.match(text.stdout, /^daemon: pid \d+, up .*\n {2}data plane off \(shim6 resolver\), no engine\n/, 'no TUN to name');
  const fl = builtShim6(['flush', '--socket', sock]);
  assert.equal(fl.status, 0, fl.stderr);
  assert.match(fl.stdout, /on 2 threads/);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
});

test('runtime paths: the sources run with tsx, the compiled tree from dist/ and bin/shim6.js, one package root', async () => {
  requireBuilt();
  // This process runs from the sources through tsx, or compiled into dist-test/ (npm test); the
  // programs it starts run from the sources only when it does and SHIM6_PROGRAMS is not dist.
  assert.equal(fromSources, !TESTS_COMPILED);
  assert.equal(packageRoot, ROOT);
  assert.equal(programsFromSources, !TESTS_COMPILED && process.env.SHIM6_PROGRAMS !== 'dist');
  if (programsFromSources) {
    assert.equal(moduleFile('lab/stream.ts'), path.join(ROOT, 'lab/stream.ts'));
    assert.deepEqual(nodeArgs('lab/stream.ts'), ['--import', import.meta.resolve('tsx'), path.join(ROOT, 'lab/stream.ts')]);
    assert.deepEqual(shim6NodeArgs(), [...SHIM6_V8_FLAGS, '--import', import.meta.resolve('tsx'), path.join(ROOT, 'cli/entry.ts')]);
  } else {
    assert.deepEqual(nodeArgs('lab/stream.ts'), [path.join(DIST, 'lab/stream.js')]);
    assert.deepEqual(shim6NodeArgs(), [...SHIM6_V8_FLAGS, path.join(ROOT, 'bin/shim6.js')]);
  }
  const built = await import(pathToFileURL(path.join(DIST, 'shim/runtime-paths.js')).href) as typeof import('../../shim/runtime-paths.ts');
  assert.equal(built.fromSources, false);
  assert.equal(built.packageRoot, ROOT);
  assert.deepEqual(built.nodeArgs('lab/stream.ts'), [path.join(DIST, 'lab/stream.js')]);
  assert.deepEqual(built.shim6NodeArgs(), [...SHIM6_V8_FLAGS, path.join(ROOT, 'bin/shim6.js')]);
});

test('the compiled lab stream tool runs as the compiled lab starts it (a stream over loopback)', { timeout: 120_000 }, async (t) => {
  requireBuilt();
  const built = await import(pathToFileURL(path.join(DIST, 'shim/runtime-paths.js')).href) as typeof import('../../shim/runtime-paths.ts');
  const { spawn } = await import('node:child_process');
  const { track } = await import('./built.ts');
  const recv = track(t, spawn(process.execPath, [...built.nodeArgs('lab/stream.ts'), 'serve', '--port', '0', '--once'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let port = 0;
  await waitFor(() => {
    if (recv.status() !== undefined) throw new Error(`receiver exited: ${recv.out()}`);
    port = Number(/"port":(\d+)/.exec(recv.out())?.[1] ?? 0);
    return port > 0;
  }, 'the receiver to listen');
  const send = track(t, spawn(process.execPath, [...built.nodeArgs('lab/stream.ts'), 'send', '--to', '127.0.0.1', '--port', String(port), '--duration', '300'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  assert.equal(await send.exited(), 0, send.out());
  assert.equal(await recv.exited(), 0, recv.out());
  assert.match(recv.out(), /"corrupt":0/);
});

test('shim6 daemon --check-config: 0 and one line for a valid file, 2 and the error for an invalid one; nothing started', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'check-config-');
  const good = path.join(dir, 'good.yaml');
  writeFileSync(good, 'port: 5600\nlisten: ["127.0.0.1:53"]\nupstreams: ["192.0.2.53"]\n');
  const ok = builtShim6(['daemon', '--check-config', '--config', good]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, `shim6: configuration OK: ${good}\n`);
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'port: 5600\ntimers: { validatorLifetime: 1000 }\n');
  const refused = builtShim6(['daemon', '--check-config', '--config', bad]);
  assert.equal(refused.status, 2);
  assert.equal(refused.stderr, 'shim6: error ECONFIG: timers.validatorLifetime: invalid value 1000: at least 30000 ms (RFC 5533 §7.13)\n');
  const flag = builtShim6(['daemon', '--check-config', '--config', good, '--manage-resolv-conf']);
  assert.equal(flag.status, 0, 'the stub on port 53: resolv.conf can name it');
  writeFileSync(good, 'listen: ["127.0.0.1:5353"]\n');
  const off53 = builtShim6(['daemon', '--check-config', '--config', good, '--manage-resolv-conf']);
  assert.equal(off53.status, 2);
  assert.match(off53.stderr, /^shim6: error EINVALID: --manage-resolv-conf: manage cannot name the stub at 127\.0\.0\.1:5353/);
});

// The daemon replaces its cache file at every save (a temp file renamed over it): a cacheFile that
// named the configuration file itself, or the HBA, CGA key or TSIG key file, was taken, and the
// first save put the caches in its place (the configuration, or the key, lost).
test('shim6 daemon --check-config refuses a cacheFile that is the configuration file or a file it names (hba, cga.key, dnsUpdate.key): ECONFIG naming cacheFile, exit 2', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'check-cache-');
  const file = path.join(dir, 'shim6.yaml');
  const cases: Array<[string, RegExp]> = [
    [`cacheFile: ${file}\n`, /the configuration file itself/],
    [`cacheFile: ${path.join(dir, 'hba.json')}\nhba: hba.json\n`, /the file hba names/],
    [`cacheFile: ${path.join(dir, 'rsa.pem')}\ncga: { key: rsa.pem }\n`, /the file cga\.key names/],
  ];
  for (const [text, why] of cases) {
    writeFileSync(file, text);
    const r = builtShim6(['daemon', '--check-config', '--config', file]);
    assert.equal(r.status, 2, `${text}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^shim6: error ECONFIG: cacheFile: invalid value ".*": is /, text);
    assert.match(r.stderr, why, text);
  }
});

// The configuration and the files it names were read whole (readFileSync): `--config /dev/zero`
// took 10 GB and never ended, as did a cga.key, hba or dnsUpdate.key naming it; a start or a reload
// reads them too. Now each is read up to its bound (shim/read-bounded.ts).
test('shim6 daemon --check-config: a configuration over its bound (16 MiB), and a config (also shim6 resolver\'s), hba, cga.key or dnsUpdate.key that is /dev/zero, are refused at their bound (exit 2), not read to the end', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'check-bounds-');
  const big = path.join(dir, 'big.yaml');
  writeFileSync(big, `${'#'.repeat(1023)}\n`.repeat(16 * 1024) + 'port: 5600\n');
  const over = builtShim6(['daemon', '--check-config', '--config', big]);
  assert.equal(over.status, 2, over.stdout + over.stderr);
  assert.match(over.stderr, /^shim6: error ECONFIG: --config: cannot read ".*big\.yaml": .* is larger than 16 MiB, the bound for a configuration file; not read\n$/);
  const files: Array<[string, RegExp]> = [
    ['hba: /dev/zero\n', /^shim6: error ECONFIG: hba: cannot read "\/dev\/zero": .*larger than 1 MiB/],
    ['cga: { key: /dev/zero }\n', /^shim6: error ECGA_KEY: cga\.key: "\/dev\/zero": is over 65536 bytes/],
    ['dnsUpdate: { server: "[2001:db8::53]:53", zone: example., name: h.example., key: /dev/zero }\n', /^shim6: error EDNS_KEY: dnsUpdate\.key: .*larger than 1 MiB/],
  ];
  const endless = builtShim6(['daemon', '--check-config', '--config', '/dev/zero']);
  assert.equal(endless.status, 2, endless.stderr);
  assert.match(endless.stderr, /^shim6: error ECONFIG: --config: cannot read "\/dev\/zero": .*larger than 16 MiB/);
  // shim6 resolver's own file likewise (it reads it before it binds anything).
  const resolver = builtShim6(['resolver', '--config', '/dev/zero']);
  assert.equal(resolver.status, 2, resolver.stderr);
  assert.match(resolver.stderr, /^shim6: error ECONFIG: --config: cannot read "\/dev\/zero": .*larger than 16 MiB/);
  for (const [text, why] of files) {
    const file = path.join(dir, 'names-zero.yaml');
    writeFileSync(file, text);
    const r = builtShim6(['daemon', '--check-config', '--config', file]);
    assert.equal(r.status, 2, `${text}: ${r.stderr}`);
    assert.match(r.stderr, why, text);
  }
});

test('shim6 daemon --check-config refuses what the start refuses in the files the config names (cga.key, hba, dnsUpdate.key) and in its peers, with the start\'s error', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'check-files-');
  const garbage = path.join(dir, 'garbage');
  writeFileSync(garbage, 'not a key\n');
  const pem = path.join(dir, 'cga.pem');
  writeFileSync(pem, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const tsig = path.join(dir, 'tsig.key');
  writeFileSync(tsig, `key "h.example.org." { algorithm hmac-sha256; secret "${Buffer.alloc(32, 7).toString('base64')}"; };\n`);
  const dns = (key: string): string => `dnsUpdate: { server: "2001:db8::53", zone: example.org, name: h.example.org, key: ${key} }\n`;
  const check = (text: string): { status: number | null; stdout: string; stderr: string } => {
    const file = path.join(dir, 'shim6.yaml');
    writeFileSync(file, text);
    return builtShim6(['daemon', '--check-config', '--config', file]);
  };
  const refused: Array<[string, RegExp]> = [
    [`cga: ${garbage}\n`, /^shim6: error ECGA_KEY: cga\.key: ".*garbage": is not a PEM private key/],
    [`hba: ${path.join(dir, 'missing.json')}\n`, /^shim6: error ECONFIG: hba: cannot read ".*missing\.json": .*no such file/],
    [`hba: ${garbage}\n`, /^shim6: error EHBA_PARAMS: .*garbage/],
    [dns(garbage), /^shim6: error EDNS_KEY: dnsUpdate\.key: /],
    // The config's own rule, through the command as well.
    ['peers: [{ ulid: "::" }]\n', /^shim6: error ECONFIG: peers\[0\]\.ulid: invalid value "::": :: is the unspecified address/],
  ];
  for (const [text, why] of refused) {
    const r = check(text);
    assert.equal(r.status, 2, `${text}${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '', text);
    assert.match(r.stderr, why, text);
  }
  // Files the start takes: OK.
  const ok = check(`cga: ${pem}\n${dns(tsig)}`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^shim6: configuration OK: /);
});

test('--config "" (an unset variable) is EINVALID naming --config: it was no file at all, the built-in defaults ("configuration OK: ")', () => {
  requireBuilt();
  const daemon = builtShim6(['daemon', '--check-config', '--config', '']);
  assert.equal(daemon.status, 2, daemon.stdout + daemon.stderr);
  assert.equal(daemon.stdout, '');
  assert.equal(daemon.stderr, 'shim6: error EINVALID: --config: invalid value "": expected the path of a configuration file\n');
  // The port out of range: the old code refused it before binding anything (it ran on the defaults otherwise).
  const resolver = builtShim6(['resolver', '--config', '', '--listen', '127.0.0.1:99999', '--no-engine']);
  assert.equal(resolver.status, 2, resolver.stderr);
  assert.equal(resolver.stderr, 'shim6: error EINVALID: --config: invalid value "": expected the path of a configuration file\n');
});

test('shim6 daemon --check-config refuses an upstream that is the stub itself, as the start does (exit 2, naming upstreams, not a flag the daemon does not have)', (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'check-stub-');
  const file = path.join(dir, 'shim6.yaml');
  const check = (text: string): { status: number | null; stdout: string; stderr: string } => {
    writeFileSync(file, text);
    return builtShim6(['daemon', '--check-config', '--config', file]);
  };
  const same = check('listen: ["127.0.0.1:53"]\nupstreams: ["127.0.0.1:53"]\n');
  assert.equal(same.status, 2, same.stdout + same.stderr);
  assert.equal(same.stdout, '');
  assert.equal(same.stderr, 'shim6: error ECONFIG: upstreams: invalid value "127.0.0.1:53": is the stub itself\n');
  // A wildcard listener answers on loopback too.
  const wildcard = check('listen: ["[::]:5300"]\nupstreams: ["[::1]:5300"]\n');
  assert.equal(wildcard.status, 2, wildcard.stdout + wildcard.stderr);
  assert.match(wildcard.stderr, /^shim6: error ECONFIG: upstreams: invalid value "\[::1\]:5300": is the stub itself/);
  // Another port is another server; no stub (listen: []) forwards nowhere.
  assert.equal(check('listen: ["127.0.0.1:53"]\nupstreams: ["127.0.0.1:5300"]\n').status, 0);
  assert.equal(check('listen: []\nupstreams: ["127.0.0.1:53"]\n').status, 0);
});

test('shim6 daemon --check-config refuses a peer that is an address of this host, as the start does (a network namespace of its own)', (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'check-peers-');
  const file = path.join(dir, 'shim6.yaml');
  const sh = 'set -e; ip link set lo up; ip addr add 2001:db8:5533::1/128 dev lo; exec "$@"';
  const run = (peers: string): { status: number | null; stdout: string; stderr: string } => {
    writeFileSync(file, `peers: ${peers}\n`);
    const r = spawnSync('unshare', ['-n', 'sh', '-c', sh, 'sh', process.execPath, ...shim6NodeArgs(), 'daemon', '--check-config', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const us = run('[{ ulid: "2001:db8:5533::1" }]');
  assert.equal(us.status, 2, us.stdout + us.stderr);
  assert.equal(us.stderr, 'shim6: error ECONFIG: peers[0].ulid: 2001:db8:5533::1 is an address of this host, not a peer\'s\n');
  const locator = run('[{ ulid: "2001:db8:99::1", locators: ["2001:db8:99::1", "2001:db8:5533::1"] }]');
  assert.equal(locator.status, 2, locator.stdout + locator.stderr);
  assert.match(locator.stderr, /^shim6: error ECONFIG: peers\[0\]\.locators\[1\]: 2001:db8:5533::1 is an address of this host/);
  const other = run('[{ ulid: "2001:db8:99::1" }]');
  assert.equal(other.status, 0, other.stderr);
});

test('shim6 daemon without --config reads /etc/shim6/shim6.yaml when it is there (an overlay on /etc in a mount namespace of its own)', (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'default-config-');
  for (const d of ['upper', 'work']) mkdirSync(path.join(dir, d));
  // The host's /etc is the overlay's lower layer: nothing is written to it.
  const sh = `set -e
    mount -t overlay overlay -o lowerdir=/etc,upperdir="$1/upper",workdir="$1/work" /etc
    shift
    "$@" daemon --check-config
    mkdir -p /etc/shim6 && printf 'port: x\\n' > /etc/shim6/shim6.yaml
    "$@" daemon --check-config || echo "exit $?"`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', sh, 'sh', dir, process.execPath, ...shim6NodeArgs()], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'shim6: configuration OK: no file, the defaults\nexit 2\n');
  assert.equal(r.stderr, 'shim6: error ECONFIG: port: invalid value "x": expected an integer in 1..65535\n');
});
