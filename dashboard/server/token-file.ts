/**
 * The dashboard's token lives in `<data-dir>/dashboard.token`: created at the first start, reused on
 * later ones (a bookmarked tab, a script reading the file and an open browser keep working across
 * restarts). It is a secret like the CA key: the file is created owner-only (0600) before a byte is
 * written, and appears complete or not at all (written under a temporary name, then linked), so two
 * starts racing never see a half-written token. Deleting the file makes the next start choose a new one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { newToken } from './security';

export const TOKEN_FILE_NAME = 'dashboard.token';
const TOKEN_RE = /^[A-Za-z0-9_-]{32,256}$/;

export interface DashboardToken {
  token: string;
  file: string;
  created: boolean;
}

export function tokenFilePath(dataDir: string): string {
  return path.join(dataDir, TOKEN_FILE_NAME);
}

/** The token in the file, or null when there is no file; throws when it cannot be read safely. */
function readToken(file: string, warn: (m: string) => void): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read the dashboard token ${file}: ${(err as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new Error(`${file} belongs to another user`);
    if ((st.mode & 0o077) !== 0) {
      fs.fchmodSync(fd, 0o600);
      warn(`${file} was readable by others (mode ${(st.mode & 0o777).toString(8)}); made it owner-only`);
    }
    const text = fs.readFileSync(fd, 'utf8').trim();
    if (!TOKEN_RE.test(text)) {
      warn(`${file} does not hold a usable token; writing a new one`);
      return '';
    }
    return text;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `token` to a new owner-only file beside `file`; returns its name. */
function writeTemp(file: string, token: string): string {
  const temp = `${file}.${process.pid}.${newToken().slice(0, 8)}.tmp`;
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return temp;
}

/** The data dir's token, created (owner-only, atomically) when missing or unusable. */
export function loadOrCreateDashboardToken(dataDir: string, warn: (m: string) => void = () => undefined): DashboardToken {
  const file = tokenFilePath(dataDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = readToken(file, warn);
    if (existing) return { token: existing, file, created: false };
    const token = newToken();
    const temp = writeTemp(file, token);
    try {
      if (existing === '') {
        fs.renameSync(temp, file); // replaces the unusable file in one step
        return { token, file, created: true };
      }
      fs.linkSync(temp, file); // fails if another start created it meanwhile: then use theirs
      return { token, file, created: true };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
        // A file system without hard links: a rename is still atomic (a racing start may then win).
        fs.renameSync(temp, file);
        return { token, file, created: true };
      }
      if (code !== 'EEXIST') throw new Error(`cannot write the dashboard token ${file}: ${(err as Error).message}`);
    } finally {
      fs.rmSync(temp, { force: true });
    }
  }
  throw new Error(`cannot create the dashboard token ${file}: it keeps changing`);
}
