// Every `$ shim6 …` example in the console blocks of docs/wire.md is run through
// the real CLI, and its printed output (stdout, or stderr on failure) must match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, shim6 } from '../helpers/cli.ts';

/** Split a command line on spaces, honouring single quotes (all the docs use). */
function argv(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2]!);
  return out;
}

const doc = readFileSync(path.join(ROOT, 'docs/wire.md'), 'utf8');
const examples: { cmd: string; expected: string }[] = [];
for (const block of doc.matchAll(/```console\n([\s\S]*?)```/g)) {
  for (const part of block[1]!.split(/^\$ /m).slice(1)) {
    const [cmd, ...rest] = part.split('\n');
    examples.push({ cmd: cmd!, expected: rest.join('\n').trimEnd() });
  }
}

test('docs/wire.md has CLI examples', () => {
  assert.ok(examples.length >= 4, `found ${examples.length}`);
});

for (const ex of examples) {
  test(`docs/wire.md: ${ex.cmd.slice(0, 70)}`, () => {
    const args = argv(ex.cmd);
    assert.equal(args[0], 'shim6');
    const r = shim6(args.slice(1));
    const printed = (r.status === 0 ? r.stdout : r.stderr).trimEnd();
    assert.equal(printed, ex.expected);
  });
}
