/**
 * This process's CLOCK_BOOTTIME timerfds (shim/clock.ts `deadlineTimer`), read from
 * /proc/self/fdinfo: the timers the kernel fires at a resume once their time has passed. This VM
 * cannot be suspended; a test checks a timer is of that kind and armed where it should be.
 * `armed`: ms left until it fires (it_value; 0 when disarmed).
 */
import { readdirSync, readFileSync } from 'node:fs';

export function bootTimers(): Array<{ fd: string; armed: number }> {
  return readdirSync('/proc/self/fdinfo').flatMap((fd) => {
    let info: string;
    try { info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'); } catch { return []; }
    const m = /clockid:\s*(\d+)[\s\S]*it_value:\s*\((\d+),\s*(\d+)\)/.exec(info);
    return m && m[1] === '7' ? [{ fd, armed: Number(m[2]) * 1000 + Number(m[3]) / 1e6 }] : [];
  });
}
