/**
 * The judge's command-line side, shared by `start`, `analyze` and `import`: the `--home-country`
 * and `--rules` flags, reading them (with the data dir's trackers.json) into settings, with a bad
 * setting as a usage error, and the offline address tables that analysis goes on without if missing.
 */
import type { GeoLookup } from '../analyse';
import { loadGeoLookup } from '../geo';
import { JudgeConfigError, loadJudgeSettings, type JudgeSettings } from '../judge-config';
import type { FlagSpec, ParsedArgs } from './args';
import { UsageError } from './args';

export const JUDGE_FLAGS: FlagSpec[] = [
  { name: 'home-country', type: 'string', placeholder: 'CC', description: "the phone's home country (ISO code, e.g. NO) when profile and traffic do not tell it" },
  { name: 'rules', type: 'string', placeholder: 'FILE', description: 'severity overrides (JSON rules, see README)' },
];

/** Settings from the flags and the data dir; a bad rules file or country is a UsageError. */
export function judgeSettingsFromFlags(args: ParsedArgs, dataDir: string): JudgeSettings {
  try {
    return loadJudgeSettings({ dataDir, rulesFile: args.flags['rules'] as string | undefined, homeCountry: args.flags['home-country'] as string | undefined });
  } catch (err) {
    if (err instanceof JudgeConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** Country and network owner of server addresses, from the offline tables; undefined (and a warning) if they are missing. */
export function loadGeoOrWarn(warn: (text: string) => void, cacheDir: string | undefined): GeoLookup | undefined {
  try {
    return loadGeoLookup({ cacheDir });
  } catch (err) {
    warn(`destination countries and networks unavailable (${(err as Error).message})`);
    return undefined;
  }
}
