/**
 * A delaying DNS forwarder for the resolver bench: an upstream `rtt` ms away
 * on a kernel without netem. `node --import tsx bench/_delay-forwarder.ts
 * <listen port> <upstream port> <rtt ms>` listens on 127.0.0.1 (UDP and TCP)
 * and relays everything to 127.0.0.1:<upstream port>, holding each datagram
 * (and each TCP chunk) rtt/2 ms on the way there and rtt/2 ms on the way back.
 *
 * UDP: every client address:port gets an upstream socket of its own (so the
 * upstream's answers find their way back and the client's source-port checks
 * hold); sockets idle for 10 s are closed. TCP: one upstream connection per
 * client connection. The delay is one FIFO released by one timer. libuv's
 * timers count whole milliseconds, so a timer fires up to ~1 ms late, and two
 * datagrams that arrived microseconds apart (Knot's answers to the stub's
 * TYPE65300 + AAAA pair) would often leave a whole timer tick apart, where a
 * real path keeps them microseconds apart: so each firing releases everything
 * due within the next millisecond (SLACK_MS), which on average offsets the
 * lateness. Both sides of a comparison pass through the same forwarder.
 */
import dgram from 'node:dgram';
import net from 'node:net';

const [listenPort, upPort, rttMs] = process.argv.slice(2).map(Number) as [number, number, number];
const HALF = rttMs / 2;
const HOST = '127.0.0.1';
/** Held items due within this much of a timer firing leave with it (see above). */
const SLACK_MS = 1;

interface Held { due: number; run: () => void }
const queue: Held[] = [];
let head = 0;
let timer: NodeJS.Timeout | undefined;

/** Run `run` HALF ms from now, in arrival order. */
function hold(run: () => void): void {
  queue.push({ due: performance.now() + HALF, run });
  if (!timer) arm();
}

function arm(): void {
  const next = queue[head];
  if (!next) { queue.length = 0; head = 0; timer = undefined; return; }
  timer = setTimeout(release, Math.max(0, next.due - SLACK_MS / 2 - performance.now()));
}

function release(): void {
  const now = performance.now();
  while (head < queue.length && queue[head]!.due <= now + SLACK_MS) queue[head++]!.run();
  if (head > 4096) { queue.splice(0, head); head = 0; }
  arm();
}

// UDP
const front = dgram.createSocket('udp4');
interface Flow { sock: dgram.Socket; used: number }
const flows = new Map<string, Flow>();
front.on('message', (msg, from) => {
  const key = `${from.address}:${from.port}`;
  let f = flows.get(key);
  if (!f) {
    const sock = dgram.createSocket('udp4');
    sock.on('message', (ans) => { hold(() => front.send(ans, from.port, from.address)); });
    sock.on('error', () => {});
    sock.bind(0, HOST);
    f = { sock, used: 0 };
    flows.set(key, f);
  }
  f.used = performance.now();
  const s = f.sock;
  hold(() => s.send(msg, upPort, HOST));
});
front.on('error', (err) => { console.error(err.message); process.exit(1); });
setInterval(() => {
  const old = performance.now() - 10_000;
  for (const [k, f] of flows) if (f.used < old) { f.sock.close(); flows.delete(k); }
}, 5000).unref();
front.bind(listenPort, HOST, () => { front.setRecvBufferSize(4 << 20); front.setSendBufferSize(4 << 20); });

// TCP
net.createServer((client) => {
  const up = net.connect(upPort, HOST);
  client.on('data', (d) => hold(() => up.write(d)));
  up.on('data', (d) => hold(() => client.write(d)));
  client.on('end', () => hold(() => up.end()));
  up.on('end', () => hold(() => client.end()));
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
  client.on('close', () => up.destroy());
}).listen(listenPort, HOST);
