/**
 * Why: detection is only as good as the payloads it is tried on. This builds the fixture corpus in
 * test/fixtures/corpus/ from the request formats real SDKs and services use (field names from their
 * public SDKs and protocol docs) with synthetic identifiers, plus at least as many benign
 * look-alikes (order numbers, timestamps, hashes, prices...). Each fixture states exactly which
 * findings it must produce. Run: `npm run build && node dist/scripts/make-fixtures.js`.
 */
import { writeFileSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { buildLeakingFixtures } from './fixtures/leaking';
import { buildBenignFixtures } from './fixtures/benign';
import type { CorpusFixture } from './fixtures/types';

const OUT_DIR = join(__dirname, '..', '..', 'test', 'fixtures', 'corpus');

function main(): void {
  const fixtures: CorpusFixture[] = [...buildLeakingFixtures(), ...buildBenignFixtures()];
  const names = new Set<string>();
  for (const f of fixtures) {
    if (names.has(f.name)) throw new Error(`duplicate fixture name ${f.name}`);
    names.add(f.name);
  }
  mkdirSync(OUT_DIR, { recursive: true });
  for (const old of readdirSync(OUT_DIR)) if (old.endsWith('.json')) unlinkSync(join(OUT_DIR, old));
  for (const f of fixtures) writeFileSync(join(OUT_DIR, `${f.name}.json`), `${JSON.stringify(f, null, 2)}\n`);
  const leaking = fixtures.filter((f) => f.expected.length > 0).length;
  process.stdout.write(`wrote ${fixtures.length} fixtures (${leaking} leaking, ${fixtures.length - leaking} benign) to ${OUT_DIR}\n`);
}

if (require.main === module) main();
