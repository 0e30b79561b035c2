/**
 * Renumbering in the lab (issue 18): a third link R between A and B on prefix
 * 2001:db8:3::/64, outside both hosts' HBA sets, and A's addresses coming and
 * going on it (a new ISP prefix, an RFC 8981 privacy address, a deprecated or
 * removed address). B gets an address on R only so that it can route to A's
 * R address; B's daemon does not use it (it has no CGA key to prove it).
 * Owns the link it creates (inside the lab's namespaces: `labDown` removes it).
 */
import { LAB_IF, nsExec, type Lab } from './topology.ts';
import { LAB_PREFIX_R } from './hba.ts';

/** Link R's interface name in A and B. */
export const LAB_IF_R = 'labr';
/** A's and B's addresses on R (plain, not HBA members). */
export const LAB_ADDR_R = { a: '2001:db8:3::a', b: '2001:db8:3::b' } as const;
export { LAB_PREFIX_R };

/** Create link R (A ↔ B), with B's address on it; A's address is added by `addAddress`. */
export function linkRUp(lab: Lab): void {
  nsExec(lab.a, ['ip', 'link', 'add', LAB_IF_R, 'type', 'veth', 'peer', 'name', LAB_IF_R, 'netns', lab.b]);
  nsExec(lab.a, ['ip', 'link', 'set', LAB_IF_R, 'up']);
  nsExec(lab.b, ['ip', 'link', 'set', LAB_IF_R, 'up']);
  nsExec(lab.b, ['ip', '-6', 'addr', 'add', `${LAB_ADDR_R.b}/64`, 'dev', LAB_IF_R, 'nodad']);
}

export interface AddressOptions {
  /** Seconds (RFC 4862 lifetimes); absent = forever. */
  validLft?: number;
  preferredLft?: number;
}

/** Add `address`/64 on host `h`'s interface `dev` (no DAD: usable at once). */
export function addAddress(lab: Lab, h: 'a' | 'b', dev: string, address: string, o: AddressOptions = {}): void {
  const lft = [...(o.validLft !== undefined ? ['valid_lft', String(o.validLft)] : []), ...(o.preferredLft !== undefined ? ['preferred_lft', String(o.preferredLft)] : [])];
  nsExec(h === 'a' ? lab.a : lab.b, ['ip', '-6', 'addr', 'add', `${address}/64`, 'dev', dev, 'nodad', ...lft]);
}

/**
 * Deprecate `address` (preferred lifetime 0, still valid: RFC 4862 §5.5.4).
 * The valid lifetime stays infinite: giving a permanent address a finite one
 * with `ip addr change` leaves its prefix route with an expiry in the past
 * (kernel 6.18: `expires -17195939sec`), so the kernel stops routing the
 * prefix at once — a link failure, not a deprecation.
 */
export function deprecateAddress(lab: Lab, h: 'a' | 'b', dev: string, address: string): void {
  nsExec(h === 'a' ? lab.a : lab.b, ['ip', '-6', 'addr', 'change', `${address}/64`, 'dev', dev, 'valid_lft', 'forever', 'preferred_lft', '0']);
}

/** Remove `address` from host `h`'s interface `dev`. */
export function removeAddress(lab: Lab, h: 'a' | 'b', dev: string, address: string): void {
  nsExec(h === 'a' ? lab.a : lab.b, ['ip', '-6', 'addr', 'del', `${address}/64`, 'dev', dev]);
}

/** The interfaces A's daemon watches when R is in use. */
export const LAB_INTERFACES_R = [LAB_IF.P, LAB_IF.Q, LAB_IF_R];
