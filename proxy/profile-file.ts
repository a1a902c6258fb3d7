/**
 * Why: `--profile FILE` is typed by hand. A typo in an IMEI must be reported, not silently turned
 * into a profile that never matches; so every key and value is checked and errors name the file,
 * the key and the reason.
 */
import { readFileSync } from 'node:fs';
import type { DeviceProfile, IdentifierType } from './analyse/types';
import { IDENTIFIER_TYPES } from './analyse/types';
import { normalizeProfileValue, ProfileValueError } from './analyse/profile';

export class ProfileFileError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
  }
}

const KNOWN_KEYS = new Set<string>(['name', 'country', ...IDENTIFIER_TYPES]);

/** Validate a parsed profile object; throws ProfileFileError naming `source` and the bad key. */
export function validateProfile(data: unknown, source: string): DeviceProfile {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ProfileFileError(source, 'a device profile is a JSON object such as {"imei": "35...", "phone": "+47..."}');
  }
  const profile: DeviceProfile = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if (!KNOWN_KEYS.has(key)) {
      problems.push(`unknown key "${key}" (known: ${[...KNOWN_KEYS].join(', ')})`);
      continue;
    }
    if (key === 'name') {
      if (typeof value !== 'string') problems.push('"name" must be a string');
      else profile.name = value;
      continue;
    }
    if (key === 'country') {
      if (typeof value !== 'string' || !/^[A-Za-z]{2}$/.test(value)) problems.push('"country" must be a two-letter ISO 3166 code such as "NO" (the phone\'s home country)');
      else profile.country = value.toUpperCase();
      continue;
    }
    const values = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
    if (!values || values.some((v) => typeof v !== 'string')) {
      problems.push(`"${key}" must be a string or a list of strings`);
      continue;
    }
    for (const v of values as string[]) {
      try {
        normalizeProfileValue(key as IdentifierType, v);
      } catch (err) {
        if (err instanceof ProfileValueError) problems.push(`"${key}": "${v}" is not valid: ${err.reason}`);
        else throw err;
      }
    }
    profile[key] = typeof value === 'string' ? value : [...(values as string[])];
  }
  if (problems.length > 0) throw new ProfileFileError(source, problems.join('; '));
  return profile;
}

/** Read and validate a device profile JSON file. */
export function loadProfileFile(path: string): DeviceProfile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ProfileFileError(path, `cannot read the profile: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ProfileFileError(path, `not valid JSON: ${(err as Error).message}`);
  }
  return validateProfile(data, path);
}
