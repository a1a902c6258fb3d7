/** phonehome's version, read from its package.json (found above this file, from sources or dist/). */
import * as fs from 'fs';
import * as path from 'path';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached) return cached;
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'phonehome' && pkg.version) return (cached = pkg.version);
    } catch {
      // not here: go up
    }
  }
  return (cached = 'unknown');
}
