/**
 * `phonehome ca`: hands the user this install's CA certificate in the form their phone needs —
 * PEM (default), DER for Android's certificate installer, or the `<subject_hash_old>.0` file
 * that rooted phones and emulators put in the system store. Creates the CA on first use.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CaFileError, CertificateAuthority } from '../../certs/ca';
import type { Command } from '../cli';
import { ensureDataDir } from '../data-dir';
import { DATA_DIR_FLAG, UsageError } from './args';

const DETAILS = `Examples:
  phonehome ca > phonehome-ca.pem          the certificate as PEM (curl --cacert, iOS, most tools)
  phonehome ca --der > phonehome-ca.crt    DER, what Android's "Install a certificate" expects
  phonehome ca --android-system [DIR]      writes <subject_hash_old>.0 into DIR (default: here)
                                           for /system/etc/security/cacerts on rooted phones
The phone can also download all of these from http://phonehome.setup/ once its Wi-Fi proxy points at phonehome.
See docs/phone-setup.md for step-by-step installation.`;

export const command: Command = {
  spec: {
    name: 'ca',
    summary: "print this install's CA certificate (PEM, DER, or the Android system-store file)",
    usage: 'phonehome ca [--der] [--android-system [DIR]] [--data-dir DIR]',
    flags: [
      { name: 'der', type: 'boolean', description: 'write the certificate as DER bytes to stdout (redirect to a file)' },
      { name: 'android-system', type: 'boolean', description: 'write <subject_hash_old>.0 (PEM) into DIR or the current directory and print its path' },
      { name: 'out', type: 'string', placeholder: 'DIR', description: 'directory for --android-system (same as giving DIR after it)' },
      DATA_DIR_FLAG,
    ],
    details: DETAILS,
  },
  async run(args) {
    const der = args.flags['der'] === true;
    const androidSystem = args.flags['android-system'] === true;
    const out = args.flags['out'] as string | undefined;
    if (der && androidSystem) throw new UsageError('--der and --android-system cannot be combined (the Android system store wants PEM)');
    if (args.positionals.length > 0 && !androidSystem) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    if (args.positionals.length > 1) throw new UsageError(`--android-system takes one directory (got ${args.positionals.length})`);
    if (out !== undefined && !androidSystem) throw new UsageError('--out only applies to --android-system');
    if (out !== undefined && args.positionals.length) throw new UsageError('give the directory either after --android-system or with --out, not both');
    if (der && process.stdout.isTTY) throw new UsageError('--der writes binary data: redirect it to a file, e.g. phonehome ca --der > phonehome-ca.crt');

    let ca: CertificateAuthority;
    try {
      ca = CertificateAuthority.loadOrCreate(ensureDataDir(args.flags['data-dir'] as string | undefined, (m) => process.stderr.write(`phonehome ca: ${m}\n`)));
    } catch (err) {
      if (err instanceof CaFileError) {
        process.stderr.write(`phonehome ca: ${err.message}\n`);
        return 1;
      }
      throw err;
    }

    if (androidSystem) return writeAndroidSystemFile(ca, out ?? args.positionals[0] ?? '.');
    await writeStdout(der ? ca.certDer : ca.certPem);
    return 0;
  },
};

function writeAndroidSystemFile(ca: CertificateAuthority, dir: string): number {
  const target = path.resolve(dir, ca.androidSystemFileName());
  try {
    if (!fs.statSync(path.resolve(dir)).isDirectory()) throw new Error('not a directory');
    fs.writeFileSync(target, ca.certPem, { mode: 0o644 });
  } catch (err) {
    process.stderr.write(`phonehome ca: cannot write ${target}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`${target}\n`);
  process.stderr.write(`Push it to a rooted phone or emulator with: adb root && adb remount && adb push ${target} /system/etc/security/cacerts/ && adb shell chmod 644 /system/etc/security/cacerts/${ca.androidSystemFileName()} && adb reboot\n`);
  return 0;
}

function writeStdout(data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(data, (err) => (err ? reject(err) : resolve())));
}
