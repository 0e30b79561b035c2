// docs/capability-record.md's example is executed: its presentation form, zone
// line and TXT line must be the same record and equal the golden test bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/cli.ts';
import {
  decodeCapabilityRecord, decodeCapabilityTxt, encodeCapabilityRecord, fromGenericRdata, parseCapabilityRecord,
} from '../../shim/wire/capability-record.ts';
import { GOLDEN, GOLDEN_HEX } from './golden.ts';

const doc = readFileSync(path.join(ROOT, 'docs/capability-record.md'), 'utf8');
const block = (lang: string): string => {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(doc);
  assert.ok(m, `docs/capability-record.md has a ${lang} block`);
  return m[1]!.trim();
};

test('docs/capability-record.md example: text, zone line and TXT line are the golden record', () => {
  assert.deepEqual(parseCapabilityRecord(block('capability-text')), GOLDEN);
  const zone = /^host\.example\. 3600 IN TYPE65300 (\\# .*)$/.exec(block('capability-zone'));
  assert.ok(zone);
  const rdata = fromGenericRdata(zone[1]!);
  assert.equal(Buffer.from(rdata).toString('hex'), GOLDEN_HEX);
  assert.deepEqual(decodeCapabilityRecord(rdata), GOLDEN);
  const txt = /^_shim6\.host\.example\. 3600 IN TXT "(.*)"$/.exec(block('capability-txt'));
  assert.ok(txt);
  assert.deepEqual(decodeCapabilityTxt(txt[1]!), GOLDEN);
  assert.equal(Buffer.from(encodeCapabilityRecord(GOLDEN)).toString('hex'), GOLDEN_HEX);
});
