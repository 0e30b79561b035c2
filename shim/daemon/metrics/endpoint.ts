/**
 * The metrics port's address (config `metrics`, flag `--metrics`): `ADDR:PORT`
 * or `[V6]:PORT`, both parts required. Apart from the server so that reading
 * a config file does not load prom-client.
 */
import { badValueCode, UsageError } from '../../errors.ts';
import { canonicalIpv6, isIpv6 } from '../../wire/ipv6.ts';

export interface MetricsEndpoint { address: string; port: number }

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parse `ADDR:PORT` (IPv4) or `[V6]:PORT`: the address and the port are both
 * required (no default bind to every address). Throws UsageError naming
 * `field`: ECONFIG for the config key, EINVALID for the flag (`--metrics`).
 */
export function parseMetricsEndpoint(field: string, v: unknown): MetricsEndpoint {
  const bad = (why: string): never => { throw new UsageError(badValueCode(field), `${field}: invalid value ${JSON.stringify(v)}: ${why}`, field); };
  if (typeof v !== 'string' || v.length === 0) return bad('expected ADDR:PORT or [V6]:PORT');
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([\d.]+):(\d{1,5})$/.exec(v);
  if (!m) return bad('expected ADDR:PORT or [V6]:PORT (the address and the port are both required)');
  const host = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) bad('port out of range 1..65535');
  if (v.startsWith('[')) {
    if (!isIpv6(host)) bad('not an IPv6 address');
    return { address: canonicalIpv6(host), port };
  }
  if (!IPV4.test(host)) bad('not an IPv4 address');
  return { address: host, port };
}
