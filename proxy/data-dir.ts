/**
 * The data directory (`--data-dir`, default ~/.phonehome): database, CA, keys and tokens live here.
 * Every file phonehome creates in it is owner-only (0600) whatever the directory's own mode or the
 * umask, because a directory made by the user (or by an older phonehome) may be open to others;
 * such a directory is reported, not changed behind the user's back.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** Mode of every file phonehome writes in the data directory. */
export const OWNER_ONLY_FILE_MODE = 0o600;
/** Permission bits that give other users (group or others) some access. */
const OTHERS_BITS = 0o077;

export function resolveDataDir(flag?: string): string {
  const dir = flag ? path.resolve(flag.replace(/^~(?=$|\/)/, os.homedir())) : path.join(os.homedir(), '.phonehome');
  return dir;
}

/**
 * Creates the directory (mode 0700) if needed and returns its absolute path. An existing directory
 * other users can enter or list is reported through `warn` (its files stay owner-only either way).
 */
export function ensureDataDir(flag?: string, warn?: (text: string) => void): string {
  const dir = resolveDataDir(flag);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const problem = dataDirExposure(dir);
  if (problem && warn) warn(problem);
  return dir;
}

/** A sentence when other users can enter or list `dir`; undefined when it is the owner's only (or on Windows). */
export function dataDirExposure(dir: string): string | undefined {
  if (process.platform === 'win32') return undefined;
  let mode: number;
  try {
    mode = fs.statSync(dir).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & OTHERS_BITS) === 0) return undefined;
  const shown = mode.toString(8).padStart(4, '0');
  return `data directory ${dir} is open to other users (mode ${shown}): its files are owner-only, but others can see their names and sizes; run: chmod 700 ${dir}`;
}

/**
 * Makes `file` owner-only: created empty with mode 0600 when `create` is set and it is missing, its
 * mode narrowed to 0600 when it exists with more. Returns the mode it had when it was narrowed.
 */
export function ownerOnly(file: string, create: boolean): number | undefined {
  if (process.platform === 'win32') return undefined;
  if (create) fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, OWNER_ONLY_FILE_MODE));
  let mode: number;
  try {
    mode = fs.statSync(file).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & OTHERS_BITS) === 0) return undefined;
  fs.chmodSync(file, mode & ~OTHERS_BITS);
  return mode;
}

/**
 * Writes `content` to `file` atomically (a temporary file beside it, renamed) with mode 0600, even
 * when `file` existed with a wider mode: the new inode replaces it.
 */
export function writeOwnerOnlyFile(file: string, content: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    fs.writeFileSync(tmp, content, { mode: OWNER_ONLY_FILE_MODE, flag: 'wx' });
    if (process.platform !== 'win32') fs.chmodSync(tmp, OWNER_ONLY_FILE_MODE);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
