// `npm run build`: compile the TypeScript once into dist/ (dist/ mirrors the
// source tree, `.ts` imports rewritten to `.js`), then bundle each program, so
// that the `shim6` command runs JavaScript and needs no TypeScript compiler at
// start. Run by `npm install` / `npm ci` in a checkout and by `npm pack`
// (prepare), and by `npm test` / `npm start` when a source is newer than the
// build. A clean build each time: nothing of a removed source stays behind.
// The compiler is esbuild, file by file (`isolatedModules`: each file compiles
// alone), about a second; the types are checked by `npm test` and `npm run
// typecheck` (tsc), not by the build.
// `buildTests` compiles the tests for `npm test` into dist-test/ (never shipped).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
/** Written last: the build is whole, and as new as this file. */
const STAMP = path.join(dist, '.built');
/** The source folders of the compiled tree. */
const SOURCE_DIRS = ['cli', 'shim', 'resolver', 'zone-tools', 'lab', 'native'];
/** Files the compiled tree needs besides the compiler's output (source path, relative to the root). */
const COPIED = ['resolver/worker-boot.mjs'];
/**
 * The programs: the `shim6` command (bin/shim6.js runs it), the lab's stream and web tools, and the
 * resolver's worker thread. Each is bundled in place with what it imports (see `bundlePrograms`).
 */
const PROGRAMS = ['cli/entry.js', 'lab/stream.js', 'lab/http.js', 'resolver/worker.js'];

function newestSource(dir, newest = 0) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'build' && e.name !== 'node_modules') newest = newestSource(p, newest); } else if (/\.(ts|mjs)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Whether dist/ is complete and no source (or build setting) is newer than it. */
export function buildIsCurrent() {
  if (!existsSync(STAMP)) return false;
  const built = statSync(STAMP).mtimeMs;
  const settings = ['tsconfig.json', 'package.json', 'scripts/build.mjs'].map((f) => statSync(path.join(root, f)).mtimeMs);
  return Math.max(...settings, ...SOURCE_DIRS.map((d) => newestSource(path.join(root, d)))) <= built;
}

/** `import.meta.url` in a module of dist/ (esbuild's output keeps the word as it is). */
const IMPORT_META_URL = /\bimport\.meta\.url\b/g;

/**
 * Bundle each program in place: its dist/ file becomes a module holding everything it imports
 * (our modules and the npm dependencies; the C addon stays a file of its own), with a chunk beside
 * it for each part a subcommand imports when it runs. Node loads a few files instead of ~170: a
 * lab daemon's start (to ready) costs 0.23 s of CPU instead of 0.38 — at each start on a host,
 * and ~150 times in `npm test`. The rest of dist/ stays as compiled (the modules under their own
 * names for a reader, and the files some modules look up next to themselves). A bundled module
 * keeps its own `import.meta.url`: rewritten to its file's place relative to the bundle, so that
 * what it finds next to itself (the resolver's worker entry) it still finds.
 */
async function bundlePrograms() {
  const { build: esbuild } = await import('esbuild');
  const ownUrl = {
    name: 'own-import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, (args) => {
        const code = readFileSync(args.path, 'utf8');
        if (!args.path.startsWith(dist + path.sep) || !code.includes('import.meta.url')) return undefined;
        const out = path.join(dist, b.initialOptions.entryPoints[0]);
        const rel = path.relative(path.dirname(out), args.path).split(path.sep).join('/');
        return { contents: code.replace(IMPORT_META_URL, `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'js' };
      });
    },
  };
  for (const program of PROGRAMS) {
    await esbuild({
      entryPoints: [program], absWorkingDir: dist, outdir: path.dirname(path.join(dist, program)), allowOverwrite: true,
      // What a subcommand loads when it runs (`await import`) is a chunk of its own beside the
      // program, so that `shim6 --version` does not parse the daemon.
      splitting: true, entryNames: '[name]', chunkNames: `${path.basename(program, '.js')}-[hash]`,
      bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
      external: ['*.node'], plugins: [ownUrl],
      // CommonJS dependencies (commander, dns-packet, yaml) call require().
      banner: { js: "import { createRequire as shim6CreateRequire } from 'node:module';\nconst require = shim6CreateRequire(import.meta.url);" },
    });
  }
}

/** Compile into a fresh dist/ and bundle the programs; throws when esbuild fails. */
export async function build() {
  rmSync(dist, { recursive: true, force: true });
  await compileTree(dist, SOURCE_DIRS.flatMap((d) => sourceFiles(path.join(root, d))), { sourcemap: false });
  await bundlePrograms();
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}

/** The tests' compiled tree (`npm test`): test/ and the source folders, side by side as in the repository. */
export const TEST_TREE = path.join(root, 'dist-test');
/** Relative `.ts` specifiers of static imports, re-exports and literal dynamic imports in esbuild's output. */
const TS_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)"(\.\.?\/[^"\n]*)\.ts"/g;

function sourceFiles(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'build' && e.name !== 'node_modules') sourceFiles(p, out); } else out.push(p);
  }
  return out;
}

/**
 * Compile `files` (paths under the root) into `out`, keeping their places: esbuild strips the
 * types, and the relative `.ts` imports become `.js` (as tsc's rewriteRelativeImportExtensions
 * does). A `.d.ts` is left out; another non-TypeScript file is copied when it is in COPIED or
 * `copy` says so.
 */
async function compileTree(out, files, { sourcemap, copy = () => false }) {
  const { transform } = await import('esbuild');
  await Promise.all(files.map(async (src) => {
    const rel = path.relative(root, src);
    const dest = path.join(out, rel);
    if (rel.endsWith('.d.ts')) return;
    if (!rel.endsWith('.ts')) {
      if (COPIED.includes(rel) || copy(rel)) { mkdirSync(path.dirname(dest), { recursive: true }); copyFileSync(src, dest); }
      return;
    }
    const { code } = await transform(readFileSync(src, 'utf8'), {
      loader: 'ts', format: 'esm', target: 'node20', sourcefile: src, sourcemap,
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
    });
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(`${dest.slice(0, -3)}.js`, code.replace(TS_SPECIFIER, '$1"$2.js"'));
  }));
}

/**
 * Compile the tests and the sources they import into a fresh dist-test/ (`compileTree`; `npm test`
 * runs tsc beside the tests). Other files of test/ (fixtures) and COPIED are copied; scripts/
 * (plain JavaScript that finds the repository from its own place) is linked. A test file then starts with plain node:
 * no loader thread and no transform in each of the ~120 test processes (about 0.3 s of CPU each).
 * Takes about a second; done again only when a file it is made of (or a build setting) is newer
 * than the tree, so that a second `npm test` beside a running one leaves that one's files alone.
 */
export async function buildTests() {
  // bench/: its helpers have tests of their own (test/bench/).
  const files = ['test', 'bench', ...SOURCE_DIRS].flatMap((d) => sourceFiles(path.join(root, d)));
  const stamp = path.join(TEST_TREE, '.built');
  const inputs = [...files, ...['package.json', 'scripts/build.mjs'].map((f) => path.join(root, f))];
  if (existsSync(stamp)) {
    const built = statSync(stamp).mtimeMs;
    if (inputs.every((f) => statSync(f).mtimeMs <= built)) return;
  }
  rmSync(TEST_TREE, { recursive: true, force: true });
  // Inline source maps: a failure's stack names the TypeScript source's lines.
  await compileTree(TEST_TREE, files, { sourcemap: 'inline', copy: (rel) => rel.startsWith('test/') });
  symlinkSync('../scripts', path.join(TEST_TREE, 'scripts'));
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

/** Build unless dist/ is current; says so when it builds. */
export async function ensureBuilt() {
  if (buildIsCurrent()) return;
  console.error('shim6: compiling the TypeScript into dist/ (npm run build)…');
  await build();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await build();
  } catch (err) {
    console.error(`npm run build: ${err.message}`);
    process.exit(1);
  }
}
