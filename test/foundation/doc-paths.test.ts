// README, docs/ and every `--help` text cite only files that exist in the
// repository: a path of the repository (`shim/wire/ipv6.ts`, `scripts/start.mjs`),
// a relative Markdown link (`[wire.md](wire.md#transports)`) or a document
// named on its own (`operations.md`). Paths on the host (`/etc/…`), built files
// (`dist/`, `native/build/`), URLs and placeholders (`<prefix>`, `…`) are not
// files of the repository and are not checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ROOT } from '../helpers/cli.ts';
import { buildProgram } from '../../cli/main.ts';

const SOURCE_EXT = 'md|ts|mts|mjs|cjs|js|c|h|gyp|service|txt|lua|sh|yaml|yml|json';
/** A repository path: at least one directory, then a file with a source extension. */
const REPO_PATH = new RegExp(`(?<![\\w/.<>…-])((?:[\\w.-]+/)+[\\w.-]+\\.(?:${SOURCE_EXT}))(?![\\w/-])`, 'g');
/** A document named alone: `README.md`, `operations.md`. */
const BARE_MD = /(?<![\w/.-])([\w-]+\.md)(?![\w/-])/g;
/** A Markdown link target. */
const MD_LINK = /\]\(([^)\s]+)\)/g;

function skipped(p: string): boolean {
  return p.startsWith('dist/') || p.includes('/build/') || p.includes('node_modules/') || /[<>…*]/.test(p);
}

/** What `text` (in file `from`, a path relative to the root, or `--help`) cites that does not exist. */
function missingCitations(text: string, from: string): string[] {
  const dir = from.endsWith('.md') ? path.dirname(path.join(ROOT, from)) : ROOT;
  const exists = (p: string): boolean => existsSync(path.join(ROOT, p)) || existsSync(path.join(dir, p));
  const out = new Set<string>();
  for (const m of text.matchAll(MD_LINK)) {
    const target = m[1]!.split('#')[0]!;
    if (target === '' || /^[a-z]+:/.test(target) || target.startsWith('/')) continue;
    if (!existsSync(path.join(dir, target))) out.add(`${from}: link ${m[1]}`);
  }
  text = text.replace(MD_LINK, ']()');
  for (const m of text.matchAll(REPO_PATH)) {
    const p = m[1]!;
    if (skipped(p)) continue;
    if (!exists(p)) out.add(`${from}: ${p}`);
  }
  for (const m of text.matchAll(BARE_MD)) {
    const p = m[1]!;
    if (!exists(p) && !existsSync(path.join(ROOT, 'docs', p))) out.add(`${from}: ${p}`);
  }
  return [...out];
}

function markdownFiles(): string[] {
  const out = ['README.md'];
  const walk = (d: string): void => {
    for (const n of readdirSync(path.join(ROOT, d))) {
      const p = path.join(d, n);
      if (statSync(path.join(ROOT, p)).isDirectory()) walk(p);
      else if (n.endsWith('.md')) out.push(p);
    }
  };
  walk('docs');
  return out;
}

function helpTexts(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  const walk = (cmd: Command, name: string): void => {
    out.push({ name, text: cmd.helpInformation() });
    for (const c of cmd.commands) walk(c, `${name} ${c.name()}`);
  };
  walk(buildProgram(), 'shim6');
  return out;
}

test('README.md and docs/ cite only files that exist in the repository', () => {
  const files = markdownFiles();
  const cited = files.reduce((n, f) => n + [...readFileSync(path.join(ROOT, f), 'utf8').matchAll(REPO_PATH)].length, 0);
  assert.ok(cited > 100, `${cited} repository paths cited: the pattern finds them`);
  const missing = files.flatMap((f) => missingCitations(readFileSync(path.join(ROOT, f), 'utf8'), f));
  assert.deepEqual(missing, []);
});

test('every --help text cites only files that exist in the repository', () => {
  const helps = helpTexts();
  assert.ok(helps.length > 20, `${helps.length} commands`);
  const missing = helps.flatMap((h) => missingCitations(h.text, `${h.name} --help`));
  assert.deepEqual(missing, []);
});

test('the checker finds what is missing (a cited file that is not there)', () => {
  assert.deepEqual(missingCitations('see DESIGN.md §2 and `shim/wire/nothing.ts`, [x](nowhere.md#a)', 'docs/x.md'),
    ['docs/x.md: link nowhere.md#a', 'docs/x.md: shim/wire/nothing.ts', 'docs/x.md: DESIGN.md']);
  assert.deepEqual(missingCitations('`shim/wire/ipv6.ts`, [wire](wire.md#transports), /etc/netns/<ns>/resolv.conf, dist/cli/entry.js, README.md', 'docs/x.md'), []);
});
