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
const resolver = await Resolver.start(init.config, { sink, log }, { shards: init.shards, tcp: false }).catch((err: unknown) => {
  post({ t: 'failed', error: errorToData(err) });
  return undefined;
});
if (resolver) {
  port.on('message', (m: ToWorker) => {
    if (m.t === 'status') post({ t: 'status', id: m.id, status: resolver.status() });
    else if (m.t === 'flush') post({ t: 'flushed', id: m.id, flushed: resolver.flush() });
    else if (m.t === 'log-level') log.setLevel(m.level);
    else if (m.t === 'close') void resolver.close().then(() => port.close());
  });
  post({ t: 'ready' });
} else {
  port.close(); // nothing else keeps the thread alive: it ends
}
