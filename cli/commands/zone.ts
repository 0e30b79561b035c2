/**
 * `shim6 zone …` subcommands: generate, check and publish capability records
 * (docs/capability-record.md). Wiring only: the actions live in zone-tools/commands*.ts.
 * Owned by the zone feature; registered by cli/main.ts.
 */
import type { Command } from 'commander';
import { UsageError } from '../../shim/errors.ts';
import type { Out } from '../../zone-tools/commands.ts';
import { guardStdout, noteApplied, writeStdout } from '../stdout.ts';

// The actions' modules load when a zone command runs, not for every `shim6` start or --help.
const offline = () => import('../../zone-tools/commands.ts');
const dns = () => import('../../zone-tools/commands-dns.ts');

const RR_TYPE_HELP = 'RR type number of the capability record: private use only, 65280..65534 (RFC 6895; default 65300)';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

// A closed or full stdout: the one error line, saying what was applied (cli/stdout.ts).
const out: Out = {
  stdout: writeStdout,
  stderr: (s) => { process.stderr.write(s); },
  applied: noteApplied,
};

function finish(code: number): void {
  if (code !== 0) process.exitCode = code;
}

async function guarded(run: () => Promise<number>): Promise<void> {
  guardStdout();
  finish(await run());
}

/** The options that describe one host's record (record, update). */
function recordOptions(c: Command): Command {
  return c
    .option('--ulid <addr>', 'the host\'s ULID (must also be in its AAAA RRset)')
    .option('--locator <spec>', 'a locator ADDR[/priority[/weight[/flags]]], flags: broken, transient, broken+transient or their bits 1..3; repeat per locator', collect)
    .option('--ttl <seconds>', 'TTL of the records (default 3600)')
    .option('--port <port>', 'UDP port of the host\'s shim, if not 5533')
    .option('--txt', 'also publish the _shim6 TXT fallback ("v=shim6cap1 b64=…")')
    .option('--hba <params>', 'take locators and hba-digest from an HBA parameters file (from "zone hba")')
    .option('--aaaa <mode>', 'AAAA RRset: "all" = ULID and locators (default), "ulid" = the ULID only')
    .option('--rr-type <n>', RR_TYPE_HELP);
}

function serverOptions(c: Command): Command {
  return c
    .option('--server <addr|name[:port]>', 'the primary server that takes updates: an address or a host name, with an optional port ([v6addr]:port for IPv6)')
    .option('--zone <zone>', 'the zone that holds the host')
    .option('--key <file>', 'TSIG key file, hmac-sha256: BIND "key { … };", knot YAML, or name:secret')
    .option('--key-name <name>', 'which key, when the file holds several')
    .option('--tcp', 'use TCP (default: UDP, TCP for large messages)')
    .option('--timeout <seconds>', 'per-try timeout');
}

export function register(program: Command): void {
  const zone = program.command('zone').description('generate, check and publish shim6 capability records (zone lines, TXT fallback, RFC 2136 updates, HBA sets)');

  recordOptions(zone.command('record')
    .description('print zone-file lines for one host: comment, TYPE65300 in RFC 3597 form, AAAA, optional _shim6 TXT')
    .requiredOption('--name <name>', 'the host\'s name (owner of the AAAA and capability records)'))
    .action(async (o) => guarded(async () => (await offline()).runRecord(o, out)));

  const hba = zone.command('hba')
    .description('generate an HBA set (RFC 5535; CGA-compatible with --key) and write its parameters file')
    .option('--prefix <P/64>', 'a /64 prefix of one of the host\'s links; repeat per prefix', collect)
    .option('--sec <n>', 'CGA Sec parameter 0, 1 or 2 (default 1)')
    .option('--key <rsa.pem>', 'RSA key (PEM) for a CGA-compatible HBA set')
    .option('--out <params>', 'where to write the parameters file (JSON)')
    .action(async (o) => guarded(async () => (await offline()).runHbaGenerate(o, out)));
  hba.command('verify')
    .description('check that an address belongs to the HBA set of a parameters file (exit 0 yes, 1 no)')
    .argument('<addr>', 'the address to check')
    .argument('<params>', 'the parameters file')
    .action(async (addr: string, params: string) => guarded(async () => {
      // Flags after `verify` that are `zone hba`'s own reach `zone hba` (commander), where verify never reads them.
      const given = (['prefix', 'sec', 'key', 'out'] as const).filter((k) => hba.getOptionValueSource(k) === 'cli').map((k) => `--${k}`);
      if (given.length > 0) throw new UsageError('EINVALID', `zone hba verify: ${given.join(', ')} ${given.length === 1 ? 'is an option' : 'are options'} of zone hba (generating a set), not of verify`, given[0]);
      return (await offline()).runHbaVerify(addr, params, out);
    }));

  zone.command('check')
    .description('validate every capability record and _shim6 TXT of zone files; problems as file:line: what')
    .argument('<file...>', 'master files ("-" for stdin)')
    .option('--origin <zone>', 'origin when the file has no $ORIGIN (like named-checkzone\'s zone argument)')
    .option('--rr-type <n>', RR_TYPE_HELP)
    .option('--quiet', 'print problems only, no summary')
    .action(async (files: string[], o) => guarded(async () => (await offline()).runCheck(files, o, out)));

  serverOptions(recordOptions(zone.command('update')
    .description('replace a host\'s capability record, AAAA RRset and TXT fallback with one TSIG-signed RFC 2136 update')
    .requiredOption('--name <name>', 'the host\'s name')))
    .option('--from-host', 'take ULID and locators from this host\'s global IPv6 addresses')
    .option('--interface <name>', 'with --from-host: only this interface; repeat for more', collect)
    .option('--if-record <text>', 'apply only while the host\'s capability RRset is exactly this record (text form or "\\# N hex"; repeat for each record of the set), else refused with NXRRSET (RFC 2136 prerequisite)', collect)
    .option('--if-no-record', 'apply only while the host has no capability record, else refused with YXRRSET')
    .action(async (o) => guarded(async () => await (await dns()).runUpdate(o, out)));

  zone.command('show')
    .description('fetch a host\'s capability record (and TXT fallback) and print it; --expect* compare')
    .argument('<name>', 'the host name')
    .option('--server <addr|name[:port]>', 'server to ask: an address or a host name, with an optional port ([v6addr]:port for IPv6); default: the first nameserver in /etc/resolv.conf')
    .option('--rr-type <n>', RR_TYPE_HELP)
    .option('--no-txt', 'do not fall back to the _shim6 TXT record')
    .option('--expect <text>', 'the expected record in text form ("v1 ulid=… loc=…"); exit 1 if different')
    .option('--expect-ulid <addr>', 'the expected ULID; exit 1 if different')
    .option('--expect-locator <addr>', 'an expected locator; repeat; the set must match', collect)
    .option('--json', 'print JSON (with the raw RDATA in hex)')
    .option('--tcp', 'query over TCP')
    .option('--timeout <seconds>', 'per-try timeout')
    .action(async (name: string, o) => guarded(async () => await (await dns()).runShow(name, o, out)));

  serverOptions(zone.command('bulk')
    .description('zone lines (or, with --update, RFC 2136 updates) for every host of a CSV or JSON inventory')
    .argument('<file>', 'the inventory (CSV with a header row, or JSON array)')
    .option('--update', 'send one signed update per host instead of printing zone lines (needs --server, --zone, --key)')
    .option('--out <file>', 'without --update: write the zone lines here instead of stdout')
    .option('--ttl <seconds>', 'TTL for hosts whose row has none')
    .option('--txt', 'also publish the _shim6 TXT fallback for every host')
    .option('--aaaa <mode>', 'AAAA RRset: "all" (default) or "ulid"')
    .option('--rr-type <n>', RR_TYPE_HELP)
    .option('--progress', 'always draw the progress bar (default: on a terminal, 100+ hosts)')
    .option('--no-progress', 'never draw the progress bar')
    .option('--concurrency <n>', 'with --update: updates in flight at once (default 4)'))
    .action(async (file: string, o) => guarded(async () => await (await dns()).runBulk(file, o, out)));
}
