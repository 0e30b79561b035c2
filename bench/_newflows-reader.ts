/**
 * bench/newflows.ts's reader: the daemon's NewFlows (table + NFLOG socket) in
 * a process of its own inside the client's namespace, counting flows; on
 * SIGTERM it prints the count, the lost notifications and its CPU time.
 */
import { NewFlows } from '../shim/dataplane/new-flows.ts';

let n = 0;
const nf = NewFlows.open({ tun: 'none0', port: 5533, ratePerSecond: 100_000 }, () => { n++; });
// CPU time from here on: the flows' share, not the start-up's.
const base = process.cpuUsage();
console.log('ready');
process.on('SIGTERM', () => {
  const u = process.cpuUsage(base);
  nf.close();
  console.log(JSON.stringify({ flows: n, lost: nf.lost, cpuUs: u.user + u.system }));
  process.exit(0);
});
setInterval(() => undefined, 1000);
