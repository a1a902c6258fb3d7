/**
 * A small, strict flag parser shared by every subcommand: `--name value`, `--name=value`, boolean
 * `--flag`, repeated positional arguments. Unknown flags and bad values are errors with a clear
 * message, never silently ignored.
 */

export type FlagType = 'string' | 'int' | 'boolean' | 'list';

export interface FlagSpec {
  name: string;
  type: FlagType;
  description: string;
  /** Shown in help as the value placeholder, e.g. PORT. */
  placeholder?: string;
  default?: string | number | boolean | string[];
  /** Inclusive bounds for 'int'. */
  min?: number;
  max?: number;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  flags: FlagSpec[];
  /** Extra help text after the flag list. */
  details?: string;
}

export interface ParsedArgs {
  flags: Record<string, string | number | boolean | string[] | undefined>;
  positionals: string[];
  help: boolean;
}

export class UsageError extends Error {}

export const DATA_DIR_FLAG: FlagSpec = {
  name: 'data-dir',
  type: 'string',
  placeholder: 'DIR',
  description: 'where phonehome keeps its database and CA (default ~/.phonehome)',
};

export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const flags: ParsedArgs['flags'] = {};
  for (const f of spec.flags) if (f.default !== undefined) flags[f.name] = f.default;
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg.length > 1) throw new UsageError(`unknown option ${arg} for '${spec.name}' (see phonehome ${spec.name} --help)`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const f = spec.flags.find((x) => x.name === name);
    if (!f) throw new UsageError(`unknown option --${name} for '${spec.name}' (see phonehome ${spec.name} --help)`);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (f.type === 'boolean') {
      if (raw === undefined || raw === 'true') flags[f.name] = true;
      else if (raw === 'false') flags[f.name] = false;
      else throw new UsageError(`--${name} takes no value (got '${raw}')`);
      continue;
    }
    if (raw === undefined) {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`--${name} needs a value${f.placeholder ? ' ' + f.placeholder : ''}`);
      raw = argv[++i];
    }
    flags[f.name] = convert(f, raw);
  }
  return { flags, positionals, help };
}

function convert(f: FlagSpec, raw: string): string | number | string[] {
  switch (f.type) {
    case 'string':
      if (raw === '') throw new UsageError(`--${f.name} needs a non-empty value`);
      return raw;
    case 'int': {
      if (!/^\d+$/.test(raw)) throw new UsageError(`--${f.name} must be a whole number (got '${raw}')`);
      const n = Number(raw);
      if ((f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max) || !Number.isSafeInteger(n)) {
        throw new UsageError(`--${f.name} must be between ${f.min ?? 0} and ${f.max ?? Number.MAX_SAFE_INTEGER} (got ${raw})`);
      }
      return n;
    }
    case 'list': {
      const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
      if (!items.length) throw new UsageError(`--${f.name} needs at least one value`);
      return items;
    }
    default:
      throw new UsageError(`--${f.name}: unsupported flag type`);
  }
}

export function formatHelp(spec: CommandSpec): string {
  const lines = [`phonehome ${spec.name} — ${spec.summary}`, '', `usage: ${spec.usage}`, '', 'options:'];
  const rows = spec.flags.map((f) => {
    const left = `--${f.name}${f.type === 'boolean' ? '' : ' ' + (f.placeholder ?? f.type.toUpperCase())}`;
    const def = f.default !== undefined && f.type !== 'boolean' ? ` (default ${Array.isArray(f.default) ? f.default.join(',') : f.default})` : '';
    return [left, f.description + def];
  });
  rows.push(['--help', 'show this help']);
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [l, r] of rows) lines.push(`  ${l.padEnd(width)}  ${r}`);
  if (spec.details) lines.push('', spec.details.trimEnd());
  return lines.join('\n') + '\n';
}
