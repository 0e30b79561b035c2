/**
 * One resolver worker thread (workers.ts): a whole Resolver on this thread's
 * event loop, UDP only, its listener socket one of the main thread's
 * SO_REUSEPORT group. Capability outcomes go to the main thread, which owns the
 * engine; `status` and `close` come from it. Loaded by worker-boot.mjs.
 */
import { errorToData } from '../shim/errors.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { Logger } from '../shim/log.ts';
import type { Millis } from '../shim/time.ts';
import { LoggingSink, type CapabilitySink, type Ipv6Octets, type RecordOctets } from './capability-sink.ts';
import { Resolver } from './index.ts';
import type { FromWorker, SinkCall, ToWorker, WorkerInit } from './workers.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);

/**
 * The main thread's sink, by message: the calls made while handling one batch
 * of datagrams go over together, posted (a microtask queued at the first call)
 * before the answers they belong to are sent. The main thread's clock, not
 * this thread's, dates them there.
 */
class PortSink implements CapabilitySink {
  private calls: SinkCall[] = [];
  private readonly flush = (): void => {
    const calls = this.calls;
    this.calls = [];
    post({ t: 'sink', calls });
  };
  prime(_now: Millis, record: RecordOctets, ttl: number, nameKey: string): void { this.add({ op: 'prime', record, ttl, nameKey }); }
  absent(_now: Millis, nameKey: string, addresses: Ipv6Octets[], ttl: number): void { this.add({ op: 'absent', nameKey, addresses, ttl }); }
  private add(c: SinkCall): void {
    if (this.calls.push(c) === 1) queueMicrotask(this.flush);
  }
}

const log = new Logger({ level: init.logLevel, format: init.logFormat, component: `shim6[${init.shard}]` });
const sink: CapabilitySink = init.logOnly ? new LoggingSink(log.child(`capability[${init.shard}]`)) : new PortSink();
/** How long a dying thread's resolver may take to close. */
const DIE_CLOSE_MS = 1000;
/** Set once started: what a dying thread closes. */
let running: Resolver | undefined;
let closing: Promise<void> | undefined;

/** Close this thread's resolver once (its sockets leave the SO_REUSEPORT group). */
function closeResolver(): Promise<void> {
  closing ??= (running?.close() ?? Promise.resolve()).catch((err: unknown) => {
    log.error('resolver thread close failed', { shard: init.shard, error: (err as Error).message });
  });
  return closing;
}

/**
 * A bug that throws on this thread (or a promise rejected with nobody to
 * handle it) ends it: logged here with its stack, the resolver closed as
 * `close` does, then the error thrown again without these handlers, so the
 * thread ends as Node ends it and the main thread gets it (its `error` and
 * `exit` events: logged there, and the thread started again after 1 s,
 * workers.ts). A close that does not end in time is cut short; native sockets
 * still open are closed by the addon as the thread's environment ends.
 */
function die(kind: string, err: unknown): void {
  log.error('resolver thread failed, closing it', { shard: init.shard, kind, error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
  if (closing) return; // failed again while closing: the first failure ends the thread
  setTimeout(() => process.exit(1), DIE_CLOSE_MS).unref();
  void closeResolver().then(() => {
    process.removeAllListeners('uncaughtException');
    process.removeAllListeners('unhandledRejection');
    setImmediate(() => { throw err instanceof Error ? err : new Error(String(err)); });
  });
}
process.on('uncaughtException', (err) => die('uncaughtException', err));
process.on('unhandledRejection', (err) => die('unhandledRejection', err));

const resolver = await Resolver.start(init.config, { sink, log }, { shards: init.shards, tcp: false }).catch((err: unknown) => {
  post({ t: 'failed', error: errorToData(err) });
  return undefined;
});
if (resolver) {
  running = resolver;
  port.on('message', (m: ToWorker) => {
    if (m.t === 'status') post({ t: 'status', id: m.id, status: resolver.status() });
    else if (m.t === 'flush') post({ t: 'flushed', id: m.id, flushed: resolver.flush() });
    else if (m.t === 'log-level') log.setLevel(m.level);
    else if (m.t === 'close') void closeResolver().then(() => port.close());
  });
  post({ t: 'ready' });
} else {
  port.close(); // nothing else keeps the thread alive: it ends
}
