/**
 * WireError: the only thing a decoder of untrusted bytes may throw. `code` is
 * stable and asserted on by tests; `offset` is where in the input it went wrong.
 */
import { Shim6Error } from '../errors.ts';

export type WireErrorCode =
  | 'TRUNCATED'          // input ends before a field or a declared length
  | 'BAD_LENGTH'         // a length field is inconsistent (too small for the type, not a multiple, exceeds input)
  | 'BAD_CHECKSUM'       // Shim6 header checksum does not verify
  | 'BAD_TYPE'           // a type octet is not one this decoder knows
  | 'BAD_FIELD'          // a field holds a value the format forbids (reserved bit set, version, count out of range…)
  | 'UNKNOWN_CRITICAL_OPTION' // an option with C=1 that is not known or not allowed in this message
  | 'BAD_OPTION'         // a known option whose contents do not match its declared length or format
  | 'BAD_ADDRESS'        // text that is not an IPv6 address
  | 'BAD_RECORD'         // capability record problems not covered above
  | 'BAD_SYNTAX';        // presentation-form (text) input that does not parse

export class WireError extends Shim6Error {
  readonly code: WireErrorCode;
  readonly offset: number | undefined;
  /** For UNKNOWN_CRITICAL_OPTION: the option type, so the engine can build an Error message (RFC 5533 §5.14 code 1). */
  readonly optionType: number | undefined;
  constructor(code: WireErrorCode, message: string, offset?: number, optionType?: number) {
    super(offset === undefined ? message : `${message} (at octet ${offset})`);
    this.code = code;
    this.offset = offset;
    this.optionType = optionType;
  }
}
