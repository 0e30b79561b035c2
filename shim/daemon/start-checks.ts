/**
 * What the daemon's start refuses in the files its config names and in its peers, before anything
 * is set up: the HBA parameters file (`hba`), the CGA key (`cga.key`, and that the two belong
 * together), the TSIG key of `dnsUpdate`, and a configured peer that is this host; and the stub's
 * upstreams (config.ts `stubConfig`: none, or the stub itself).
 * `shim6 daemon --check-config` runs these, so that what it accepts the start accepts too
 * (docs/configuration.md); the start (daemon.ts `identify`, `startClaimed`) runs the same
 * functions at its own steps, between which it sets things up, and a reload (`reloadConfig`)
 * runs `refusePeersThatAreUs` on the new peers.
 *
 * Owns those checks and their errors (each names the key and the file). Sets nothing up: it reads
 * the files and the host's addresses (`ip addr`), nothing more.
 */
import { readBounded } from '../read-bounded.ts';
import { UsageError } from '../errors.ts';
import { canonicalIpv6 } from '../wire/ipv6.ts';
import { memberParams, parseHbaParams, type HbaParamsFile } from '../wire/hba-params.ts';
import { stubConfig, type DaemonConfig } from './config.ts';
import { readSystemResolvers } from '../../resolver/config.ts';
import { defaultStateDirectory, resolversAsAtStart } from './resolv-handover.ts';
import { readLocalAddresses, type LocalAddress } from './locators.ts';
import { checkHbaMatchesKey, loadCgaKey, type CgaKey } from './cga-identity.ts';
import { loadDnsKey } from './dns-update.ts';
import { checkLocatorParams } from '../engine/cga.ts';
import { hbaSizeProblem, localListRoom } from '../engine/local.ts';

/** Read and parse the HBA parameters file `hba`: unreadable is ECONFIG naming it, damaged EHBA_PARAMS. */
export function readHba(file: string): HbaParamsFile {
  let text: string;
  try {
    text = readBounded(file, '', 'params');
  } catch (err) {
    throw new UsageError('ECONFIG', `hba: cannot read ${JSON.stringify(file)}: ${(err as Error).message}`, 'hba');
  }
  return parseHbaParams(text, file);
}

/**
 * Each member's parameters must prove its address and hold the set's key: every locator of the
 * engine that is a member carries them (orderLocators), and the engine refuses parameters that do
 * not (LocalLocator.cgaParams) — here at the start, as a configuration error naming the file,
 * rather than when that member's address appears. And they must leave room for a Locator List
 * beside them and the key's signature (identityListRoom): a set of too many prefixes could never
 * be announced.
 */
export function checkHbaMembers(hba: HbaParamsFile, file: string, cgaKey: CgaKey | undefined): void {
  try {
    const problem = hbaSizeProblem(hba.members.length, Buffer.from(hba.publicKey, 'hex'), cgaKey?.key);
    if (problem !== undefined) throw new Error(problem);
    checkLocatorParams(hba.members.map((m) => ({ address: m.address, cgaParams: memberParams(m) })), cgaKey?.key);
    identityListRoom(hba, cgaKey, undefined);
  } catch (err) {
    throw new UsageError('EHBA_PARAMS', `hba: ${JSON.stringify(file)}: ${(err as Error).message}`, 'hba');
  }
}

/**
 * Entries our Locator List may have (engine localListRoom): beside the largest PDS we send (an HBA
 * member's, or our CGA's) and, with a key, its CGA Signature, every message carrying the list must
 * fit a Shim6 message (2,048 octets). Throws UsageError ECGA_PARAMS, naming the sizes, when not even
 * the ULID fits (checkHbaMembers says so at the start, naming the file).
 */
export function identityListRoom(hba: HbaParamsFile | undefined, cgaKey: CgaKey | undefined, cgaParams: Uint8Array | undefined): number {
  return localListRoom(cgaParams, hba?.members.map((m) => ({ address: m.address, cgaParams: memberParams(m) })) ?? [], cgaKey?.key);
}

/**
 * A configured peer whose ULID or locator is an address of this host would be a context with
 * ourselves, refused by our own guard every few seconds without end (`ulid-is-local`): ECONFIG,
 * naming the key, before anything starts.
 */
export function refusePeersThatAreUs(config: DaemonConfig, host: readonly LocalAddress[]): void {
  const ours = new Set(host.map((l) => canonicalIpv6(l.address)));
  config.peers.forEach((p, i) => {
    if (ours.has(canonicalIpv6(p.ulid))) throw new UsageError('ECONFIG', `peers[${i}].ulid: ${p.ulid} is an address of this host, not a peer's`, `peers[${i}].ulid`);
    p.locators.forEach((l, j) => {
      if (ours.has(canonicalIpv6(l.address))) throw new UsageError('ECONFIG', `peers[${i}].locators[${j}]: ${l.address} is an address of this host, not a peer's`, `peers[${i}].locators[${j}]`);
    });
  });
}

/**
 * The start's checks of `config` (`shim6 daemon`, the data plane on), in the start's order: the
 * HBA set, the CGA key, the key against the set, the set's members, the peers against the host's
 * addresses (`host`, read when there are peers), the TSIG key, the stub's upstreams (from the
 * host's resolver files when the config names none, as the start reads them: before a DNS
 * hand-over whose state is in `stateDir`). Throws the start's own error.
 */
export function checkStartInputs(config: DaemonConfig, host: () => readonly LocalAddress[] = readLocalAddresses, stateDir = defaultStateDirectory()): void {
  const hba = config.hba ? readHba(config.hba) : undefined;
  const cgaKey = config.cga ? loadCgaKey(config.cga.key) : undefined;
  if (cgaKey && hba) checkHbaMatchesKey(hba, config.hba!, cgaKey);
  if (hba) checkHbaMembers(hba, config.hba!, cgaKey);
  if (config.peers.length > 0) refusePeersThatAreUs(config, host());
  if (config.dnsUpdate) loadDnsKey(config.dnsUpdate.key, config.dnsUpdate.keyName);
  stubConfig(config, resolversAsAtStart(stateDir, readSystemResolvers()));
}
