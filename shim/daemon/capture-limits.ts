/**
 * The bounds of a live capture (capture.ts), apart so that the command line's
 * --help names them without loading the capture code.
 */

/** Longest capture (s), and the default (s). */
export const MAX_CAPTURE_SECONDS = 3600;
export const DEFAULT_CAPTURE_SECONDS = 10;
/** Default and largest pcap file (octets); the capture ends when it would grow past the bound. */
export const DEFAULT_CAPTURE_BYTES = 8 * 1024 * 1024;
export const MAX_CAPTURE_BYTES = 32 * 1024 * 1024;
