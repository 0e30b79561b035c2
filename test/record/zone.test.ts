// Real BIND parses what we write: capability records in RFC 3597 generic form
// and TXT fallbacks split into 255-octet strings go through named-compilezone,
// and what BIND prints back decodes to the same records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { needs } from '../helpers/prereq.ts';
import {
  decodeCapabilityRecord, decodeCapabilityTxt, encodeCapabilityRecord, encodeCapabilityTxt, fromGenericRdata, splitTxt, toGenericRdata,
} from '../../shim/wire/capability-record.ts';
import { arbRecord } from './arbitrary.ts';

const HEAD = `$ORIGIN example.\n$TTL 3600\n@ IN SOA ns.example. h.example. 1 3600 600 86400 300\n@ IN NS ns.example.\nns IN AAAA 2001:db8::53\n`;

function compile(dir: string, zone: string): { status: number | null; out: string } {
  const file = path.join(dir, 'example.zone');
  writeFileSync(file, zone);
  const r = spawnSync('named-compilezone', ['-q', '-o', '-', 'example', file], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('named-compilezone accepts generic-form and TXT capability records and prints back the same records', (t) => {
  if (!needs(t, { commands: ['named-compilezone'] })) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crypto-zone-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const records = fc.sample(arbRecord, { seed: 2136, numRuns: 30 });
  let zone = HEAD;
  records.forEach((r, i) => {
    zone += `h${i} IN TYPE65300 ${toGenericRdata(encodeCapabilityRecord(r))}\n`;
    zone += `_shim6.h${i} IN TXT ${splitTxt(encodeCapabilityTxt(r)).map((s) => `"${s}"`).join(' ')}\n`;
  });
  const { status, out } = compile(dir, zone);
  assert.equal(status, 0, out);
  let generic = 0;
  let txt = 0;
  for (const line of out.split('\n')) {
    const g = /^h(\d+)\.example\.\s+3600\s+IN\s+TYPE65300\s+(\\#.*)$/.exec(line);
    if (g) {
      assert.deepEqual(decodeCapabilityRecord(fromGenericRdata(g[2]!)), records[Number(g[1])], line);
      generic++;
    }
    const x = /^_shim6\.h(\d+)\.example\.\s+3600\s+IN\s+TXT\s+(.*)$/.exec(line);
    if (x) {
      const strings = [...x[2]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
      assert.ok(strings.every((s) => s.length <= 255));
      assert.deepEqual(decodeCapabilityTxt(strings), records[Number(x[1])], line);
      txt++;
    }
  }
  assert.equal(generic, records.length);
  assert.equal(txt, records.length);
});

test('named-checkzone rejects a generic-form line whose length does not match its hex', (t) => {
  if (!needs(t, { commands: ['named-compilezone'] })) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crypto-zone-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = toGenericRdata(encodeCapabilityRecord(fc.sample(arbRecord, { seed: 1, numRuns: 1 })[0]!));
  const bad = good.replace(/^\\# (\d+)/, (_, n: string) => `\\# ${Number(n) + 1}`);
  assert.equal(compile(dir, `${HEAD}h IN TYPE65300 ${good}\n`).status, 0);
  assert.notEqual(compile(dir, `${HEAD}h IN TYPE65300 ${bad}\n`).status, 0);
});
