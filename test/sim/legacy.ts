/**
 * A host without shim6: plain IPv6 still reaches its app
 * (the simulator delivers plain packets directly), but every Shim6 datagram
 * falls into a closed UDP port and is silently dropped — the "silence" case of
 * RFC 5533 §7.8 over UDP encapsulation.
 */
import type { Millis } from '../../shim/time.ts';
import type { AppPacket, Datagram, EncapsulateResult, EndpointEvent, HandleResult, SimEndpoint } from './endpoint.ts';

export class LegacyEndpoint implements SimEndpoint {
  /** Shim6 datagrams that arrived and were ignored. */
  ignored = 0;
  handleDatagram(_now: Millis, _d: Datagram): HandleResult {
    this.ignored++;
    return { kind: 'drop', reason: 'no shim6 here' };
  }
  encapsulate(_now: Millis, _p: AppPacket): EncapsulateResult {
    return { kind: 'no-context' };
  }
  handleTimeout(_now: Millis): void {}
  pollTransmit(): Datagram | undefined {
    return undefined;
  }
  pollTimeout(): Millis | undefined {
    return undefined;
  }
  pollEvent(): EndpointEvent | undefined {
    return undefined;
  }
}
