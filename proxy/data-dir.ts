/** The data directory (`--data-dir`, default ~/.phonehome): database and CA live here, owner-only. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export function resolveDataDir(flag?: string): string {
  const dir = flag ? path.resolve(flag.replace(/^~(?=$|\/)/, os.homedir())) : path.join(os.homedir(), '.phonehome');
  return dir;
}

/** Creates the directory (mode 0700) if needed and returns its absolute path. */
export function ensureDataDir(flag?: string): string {
  const dir = resolveDataDir(flag);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
