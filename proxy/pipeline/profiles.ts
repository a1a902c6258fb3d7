/**
 * `phonehome start --profile`: `FILE` is the default profile for every device without its own;
 * `IP=FILE` is the profile of the phone at that address (stored in the devices table, where the
 * dashboard can edit it later).
 */
import * as net from 'net';
import type { DeviceProfile } from '../analyse/types';
import { loadProfileFile } from '../profile-file';

export interface ProfileAssignments {
  defaultProfile: DeviceProfile | null;
  devices: [clientIp: string, profile: DeviceProfile][];
}

export function parseProfileArgs(items: string[], load: (file: string) => DeviceProfile = loadProfileFile): ProfileAssignments {
  const out: ProfileAssignments = { defaultProfile: null, devices: [] };
  for (const item of items) {
    const eq = item.indexOf('=');
    const ip = eq > 0 ? item.slice(0, eq) : '';
    if (ip && net.isIP(ip)) {
      out.devices.push([ip, load(item.slice(eq + 1))]);
      continue;
    }
    if (out.defaultProfile) throw new Error(`--profile: only one default profile (FILE without IP=) may be given; got a second one: ${item}`);
    out.defaultProfile = load(item);
  }
  return out;
}
