/**
 * The lab's tiny web server on host B (`shim6 lab up` starts it): answers
 * every GET with one line naming B and the client's address as B sees it, so
 * `ip netns exec <prefix>a curl http://b.lab.example/` shows the request went
 * to B's ULID (through the shim when the daemons run). Also `--bytes N`
 * answers `/big` with N octets, for a download that outlives a link failure.
 * Run as a program: `node lab/http.ts [--port 80] [--bytes N]`.
 */
import { createServer } from 'node:http';
import { hostPort } from '../shim/log.ts';

const argv = process.argv.slice(2);
const arg = (name: string, def: number): number => {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : def;
  return Number.isInteger(v) && v >= 0 ? v : def;
};
const port = arg('--port', 80);
const big = arg('--bytes', 100 * 1024 * 1024);
const chunk = Buffer.alloc(64 * 1024, 'shim6 ');

const server = createServer((req, res) => {
  if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big) });
    let left = big;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { res.once('drain', pump); return; }
      }
      res.end();
    };
    pump();
    return;
  }
  const local = hostPort(req.socket.localAddress ?? '?', req.socket.localPort ?? 0);
  const remote = hostPort(req.socket.remoteAddress ?? '?', req.socket.remotePort ?? 0);
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`hello from B at ${local}; you are ${remote}\n`);
});
server.listen({ port, host: '::' }, () => { process.stdout.write(`listening on ${hostPort('::', port)}\n`); });
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { server.close(); process.exit(0); });
