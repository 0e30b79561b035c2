// Lint: typescript-eslint's recommended rules everywhere, plus the sans-I/O rule
// for the protocol core: under shim/wire/, shim/engine/ and shim/cache/
// no sockets, no files, no processes, no timers and no clocks. Time comes in as
// `now`; bytes come in and go out as values; only drivers do I/O.
import tseslint from 'typescript-eslint';

const ioModules = ['dgram', 'net', 'fs', 'fs/promises', 'child_process', 'http', 'https', 'http2', 'tls', 'dns', 'dns/promises', 'timers', 'timers/promises', 'worker_threads', 'cluster', 'perf_hooks', 'readline', 'os'];
const banned = ioModules.flatMap((m) => [m, `node:${m}`]);

export const sansIoFiles = ['shim/wire/**/*.ts', 'shim/engine/**/*.ts', 'shim/cache/**/*.ts'];

// One composition root: the CLI (cli/) reaches the rest of the project only through the daemon
// (shim/daemon/), the resolver, the zone tools, the wire formats (`shim6 decode/encode/pcap`) and
// the shared foundation files (shim/*.ts: errors, log, constants, paths); `shim6 lab` also through
// the lab. Never the engine, the caches, the data plane or the addon directly: the daemon owns them.
const cliRooms = ['shim/daemon/', 'shim/wire/', 'resolver/', 'zone-tools/'];
/** A module specifier that leaves cli/ (`up` levels of ../) for a room not in `rooms`. */
const cliEscape = (up, rooms) => `^(\\.\\./){${up}}(?!(${rooms.join('|')})|shim/[\\w-]+\\.ts$)`;
function cliImportRules(up, rooms) {
  const message = `The CLI imports only ${rooms.join(', ')} and shim/*.ts: the daemon (shim/daemon/) is the one composition root.`;
  const regex = cliEscape(up, rooms);
  return {
    'no-restricted-imports': ['error', { patterns: [{ regex, message }] }],
    // esquery's regex literals cannot hold "/": \x2F stands for it in the dynamic-import selector.
    'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/${regex.replace(/\//g, '\\x2F')}/]`, message }],
  };
}

export default tseslint.config(
  { ignores: ['node_modules/**', '**/build/**', 'coverage/**', 'dist/**', 'dist-test/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['cli/*.ts'], rules: cliImportRules(1, cliRooms) },
  { files: ['cli/commands/**/*.ts'], rules: cliImportRules(2, cliRooms) },
  { files: ['cli/commands/lab.ts'], rules: cliImportRules(2, [...cliRooms, 'lab/']) },
  {
    files: sansIoFiles,
    rules: {
      'no-restricted-imports': ['error', { paths: banned.map((name) => ({ name, message: 'The protocol core is sans-I/O: only drivers touch sockets, files, timers and clocks.' })) }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'fetch', 'performance', 'process', 'require'].map((name) => ({ name, message: `${name} is I/O or a clock; the protocol core takes time and bytes as arguments.` })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Take `now` as an argument.' },
        { object: 'performance', property: 'now', message: 'Take `now` as an argument.' },
        { object: 'process', property: 'hrtime', message: 'Take `now` as an argument.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'new Date() reads the clock; take `now` as an argument.' },
        { selector: "ImportExpression", message: 'No dynamic imports in the protocol core.' },
      ],
    },
  },
);
