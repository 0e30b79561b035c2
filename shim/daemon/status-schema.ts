/**
 * The schema of the control socket's `status` reply (`shim6 status --json`),
 * as docs/status.md documents it: the keys every object of the reply has.
 * Stable: version 1 only ever gains keys; a key is never renamed, removed or
 * given another meaning without a new `schemaVersion`. `schemaProblems` checks
 * a reply against it (the tests do, on a live daemon's reply).
 */
import { newCounters } from '../../resolver/counters.ts';

export const STATUS_SCHEMA_VERSION = 1;

/**
 * Object path → the keys it always has. `[]` is every element of a list. An
 * object that is `null` (no engine, no resolver; `daemon.stats` of `shim6 resolver --no-engine`)
 * or absent (`engine.capability` from an engine asked without a clock) is not checked.
 */
export const STATUS_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': ['schemaVersion', 'resolver', 'engine'],
  daemon: ['pid', 'uptimeSeconds', 'tun', 'tunPersistent', 'port', 'profile', 'routed', 'locators', 'stats', 'events', 'peers'],
  'daemon.locators[]': ['address', 'ifname', 'up'],
  'daemon.stats': ['udpIn', 'udpOut', 'tunIn', 'tunOut', 'noContext', 'notIpv6', 'drops', 'prompts'],
  'daemon.events[]': ['t', 'kind'],
  'daemon.peers[]': ['name', 'ulid'],
  'daemon.primedNames[]': ['name', 'ulid'],
  'daemon.keptUlids[]': ['address', 'why', 'broken', 'connections', 'contexts', 'releaseCheckInMs'],
  'daemon.kernelPath': ['reader', 'everyMs', 'polling', 'quietMs', 'asleep', 'readings', 'wakeups', 'sleeps'],
  engine: ['contexts', 'caches', 'localGeneration', 'guard', 'messages', 'rehomings'],
  'engine.contexts[]': ['state', 'localUlid', 'peerUlid', 'ulidProof', 'contextTag', 'peerContextTag', 'pair', 'reap', 'peerLocators', 'timers', 'traffic', 'rehomings'],
  'engine.contexts[].pair': ['local', 'peer'],
  'engine.contexts[].peerLocators[]': ['address', 'verified', 'probed', 'flags'],
  'engine.contexts[].traffic': ['packetsIn', 'bytesIn', 'packetsOut', 'bytesOut'],
  'engine.contexts[].lastRehome': ['cause', 'old', 'new'],
  'engine.caches': ['positive', 'negative'],
  'engine.guard': ['ulidUnproven', 'ulidIsLocal', 'contextLimit', 'replies', 'probeReplies', 'cga', 'knownPeers'],
  'engine.guard.knownPeers': ['peers', 'asked', 'updates', 'replies', 'verifications', 'probeReplies', 'primed'],
  'engine.guard.cga': ['verified', 'cached', 'limited', 'badSignature', 'keyNotRsa', 'keyTooShort', 'keyTooLong', 'keyBadExponent'],
  'engine.guard.replies': ['R1', 'R1bis', 'Error', 'R2'],
  'engine.guard.replies.R1': ['sent', 'limited', 'oversize'],
  'engine.guard.probeReplies': ['sent', 'limited', 'trimmed', 'portPinned'],
  'engine.messages': ['sent', 'received'],
  'engine.messages.sent': ['I1', 'R1', 'I2', 'R2', 'R1bis', 'I2bis', 'Close', 'CloseAck', 'UpdateRequest', 'UpdateAck', 'Keepalive', 'Probe', 'Error'],
  'engine.capability': ['positive', 'negative'],
  'engine.capability.positive[]': ['ulid', 'source', 'locators', 'ttl'],
  'engine.capability.negative[]': ['address', 'reason', 'source', 'ttl'],
  resolver: ['listen', 'udp', 'uptimeSeconds', 'counters', 'cache', 'upstreams', 'tcp', 'capability'],
  'resolver.listen[]': ['host', 'port'],
  'resolver.counters': Object.keys(newCounters()),
  'resolver.cache': ['entries', 'bytes', 'maxEntries', 'maxBytes', 'inflight'],
  'resolver.upstreams[]': ['host', 'port', 'sent', 'answered', 'timeouts', 'failures', 'rttMs', 'rttVarMs', 'rttBuckets', 'rttSumMs', 'caseMismatches', 'down', 'caseFallback'],
  'resolver.tcp': ['connections', 'maxConnections'],
  'resolver.capability': ['enabled', 'positive', 'negative'],
  'resolver.capability.positive[]': ['name', 'source', 'ttl', 'primed', 'ulid', 'locators'],
  'resolver.capability.negative[]': ['name', 'source', 'ttl'],
  'resolver.workers': ['count', 'queries', 'restarts'],
};

/** The objects at `path` in `reply` (lists expanded), skipping null and absent ones. */
function objectsAt(reply: unknown, path: string): Array<Record<string, unknown>> {
  let level: unknown[] = [reply];
  if (path !== '') {
    for (const part of path.split('.')) {
      const list = part.endsWith('[]');
      const key = list ? part.slice(0, -2) : part;
      const next: unknown[] = [];
      for (const o of level) {
        if (typeof o !== 'object' || o === null) continue;
        const v = (o as Record<string, unknown>)[key];
        if (v === undefined || v === null) continue;
        if (list) { if (Array.isArray(v)) next.push(...(v as unknown[])); } else next.push(v);
      }
      level = next;
    }
  }
  return level.filter((o): o is Record<string, unknown> => typeof o === 'object' && o !== null && !Array.isArray(o));
}

/** Every documented key missing from `reply`, as `path.key`; empty when the reply keeps the schema. */
export function schemaProblems(reply: unknown): string[] {
  const problems: string[] = [];
  for (const [path, keys] of Object.entries(STATUS_KEYS)) {
    for (const o of objectsAt(reply, path)) {
      for (const k of keys) if (!(k in o)) problems.push(path ? `${path}.${k}` : k);
    }
  }
  if (typeof reply === 'object' && reply !== null && (reply as { schemaVersion?: unknown }).schemaVersion !== STATUS_SCHEMA_VERSION) problems.push(`schemaVersion is not ${STATUS_SCHEMA_VERSION}`);
  return [...new Set(problems)];
}
