/**
 * Why: the judge is pure, but what it needs lives in files — the user's rules (`--rules FILE`),
 * the user's own tracker entries (`<data-dir>/trackers.json`), the cached geo tables (the user's
 * cache directory). This reads and checks them once, at start, with errors that name the
 * file; the result is plain data that can be handed to the analysis worker thread.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseRules, RulesError, trackerList, validateTrackerEntries, TrackerListError, type Rule, type TrackerEntry, type TrackerList } from './analyse';
import { isCountryCode } from './analyse/judge/region';

/** Structured-clonable settings of the judge (what `start` hands to the analysis worker). */
export interface JudgeSettings {
  /** `--home-country`, upper case. */
  homeCountry?: string;
  /** The rules document as read from `--rules` (already validated; re-parsed where used). */
  rules?: unknown;
  rulesSource?: string;
  /** Entries of `<data-dir>/trackers.json`. */
  userTrackers?: TrackerEntry[];
  /** Where the geo tables are cached (see geoCacheDirOf). */
  geoCacheDir?: string;
}

/** What analyseFlow takes, built from the settings. */
export interface JudgeOptions {
  homeCountry?: string;
  rules?: Rule[];
  trackers: TrackerList;
}

export class JudgeConfigError extends Error {}

export const USER_TRACKERS_FILE = 'trackers.json';

/**
 * The geo cache is derived from the installed packages, not from the user's captures: it lives in
 * the user's cache directory ($XDG_CACHE_HOME/phonehome, else ~/.cache/phonehome), shared by every
 * data directory, so it is built once per machine and database release. Without a home directory
 * it falls back to `<data-dir>/cache`.
 */
export function geoCacheDirOf(dataDir: string): string {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'phonehome');
  const home = os.homedir();
  return home ? path.join(home, '.cache', 'phonehome') : path.join(dataDir, 'cache');
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new JudgeConfigError(`${file}: cannot read the ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JudgeConfigError(`${file}: the ${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads and checks everything; throws JudgeConfigError naming the file and the problem. */
export function loadJudgeSettings(opts: { dataDir?: string; rulesFile?: string; homeCountry?: string }): JudgeSettings {
  const settings: JudgeSettings = {};
  if (opts.homeCountry !== undefined) {
    const cc = opts.homeCountry.trim().toUpperCase();
    if (!isCountryCode(cc)) throw new JudgeConfigError(`--home-country must be a two-letter ISO 3166 code such as NO (got '${opts.homeCountry}')`);
    settings.homeCountry = cc;
  }
  if (opts.rulesFile) {
    const data = readJson(opts.rulesFile, 'rules file');
    try {
      parseRules(data, opts.rulesFile);
    } catch (err) {
      if (err instanceof RulesError) throw new JudgeConfigError(err.message);
      throw err;
    }
    settings.rules = data;
    settings.rulesSource = opts.rulesFile;
  }
  if (opts.dataDir) {
    const file = path.join(opts.dataDir, USER_TRACKERS_FILE);
    if (fs.existsSync(file)) {
      try {
        settings.userTrackers = validateTrackerEntries(readJson(file, 'tracker list'), file);
      } catch (err) {
        if (err instanceof TrackerListError) throw new JudgeConfigError(err.message);
        throw err;
      }
    }
    settings.geoCacheDir = geoCacheDirOf(opts.dataDir);
  }
  return settings;
}

export function judgeOptionsOf(s: JudgeSettings | undefined): JudgeOptions {
  return {
    ...(s?.homeCountry ? { homeCountry: s.homeCountry } : {}),
    ...(s?.rules !== undefined ? { rules: parseRules(s.rules, s.rulesSource ?? 'rules') } : {}),
    trackers: trackerList(s?.userTrackers ?? []),
  };
}
