/**
 * WireError: the only thing a decoder of untrusted bytes may throw. `code` is
 * stable and asserted on by tests; `offset` is where in the input it went wrong.
 */
import { Shim6Error } from '../errors.ts';

export type WireErrorCode =
  | 'ETRUNCATED'          // input ends before a field or a declared length
  | 'ELENGTH'         // a length field is inconsistent (too small for the type, not a multiple, exceeds input)
  | 'ECHECKSUM'       // Shim6 header checksum does not verify
  | 'ETYPE'           // a type octet is not one this decoder knows
  | 'EFIELD'          // a field holds a value the format forbids (reserved bit set, version, count out of range…)
  | 'ECRITICAL_OPTION' // an option with C=1 that is not known or not allowed in this message
  | 'EOPTION'         // a known option whose contents do not match its declared length or format
  | 'EADDRESS'        // text that is not an IPv6 address
  | 'ERECORD'         // capability record problems not covered above
  | 'ESYNTAX';        // presentation-form (text) input that does not parse

export class WireError extends Shim6Error {
  readonly code: WireErrorCode;
  readonly offset: number | undefined;
  /** For ECRITICAL_OPTION: the option type, so the engine can build an Error message (RFC 5533 §5.14 code 1). */
  readonly optionType: number | undefined;
  constructor(code: WireErrorCode, message: string, offset?: number, optionType?: number) {
    super(offset === undefined ? message : `${message} (at octet ${offset})`);
    this.code = code;
    this.offset = offset;
    this.optionType = optionType;
  }
}
