/**
 * The fixture corpus (test/fixtures/corpus, made by scripts/make-fixtures.ts) run through analyseFlow:
 * every fixture must produce exactly its expected findings — nothing missing, nothing extra — and the
 * whole corpus's precision and recall are printed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyseFlow, compileProfile } from '../../../proxy/analyse';
import type { Flow } from '../../../proxy/flow';
import type { CorpusFixture } from '../../../scripts/fixtures/types';

const CORPUS_DIR = join(__dirname, '..', '..', 'fixtures', 'corpus');

function loadCorpus(): CorpusFixture[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(CORPUS_DIR, f), 'utf8')) as CorpusFixture);
}

export function fixtureFlow(f: CorpusFixture): Flow {
  const url = new URL(f.request.url);
  const bytes = f.request.bodyBase64 !== undefined ? Buffer.from(f.request.bodyBase64, 'base64') : Buffer.from(f.request.body ?? '', 'utf8');
  const https = url.protocol === 'https:';
  return {
    kind: 'http', source: 'har', startedAt: 1700000000000, clientIp: '192.168.1.23', method: f.request.method, url: f.request.url,
    scheme: https ? 'https' : 'http', host: url.hostname, port: Number(url.port || (https ? 443 : 80)), tls: https,
    requestHeaders: f.request.headers, requestBody: { bytes, size: bytes.length, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

const corpus = loadCorpus();
const key = (type: string, value: string): string => `${type} ${value}`;
const totals = { truePositives: 0, falsePositives: 0, falseNegatives: 0 };

describe('fixture corpus', () => {
  it('has at least as many benign look-alikes as leaking requests, and enough of both', () => {
    const leaking = corpus.filter((f) => f.expected.length > 0).length;
    expect(leaking).toBeGreaterThanOrEqual(20);
    expect(corpus.length - leaking).toBeGreaterThanOrEqual(leaking - 1);
  });

  it.each(corpus.map((f) => [f.name, f] as const))('%s', (_name, fixture) => {
    const profile = fixture.profile ? compileProfile(fixture.profile) : undefined;
    const result = analyseFlow(fixtureFlow(fixture), { profile });
    const found = new Set(result.findings.map((x) => key(x.type, x.value)));
    const wanted = new Set(fixture.expected.map((x) => key(x.type, x.value)));
    for (const k of found) if (wanted.has(k)) totals.truePositives++; else totals.falsePositives++;
    for (const k of wanted) if (!found.has(k)) totals.falseNegatives++;
    const report = result.findings.map((x) => `${x.type} ${x.value} @ ${x.path} [${x.detector}] ${x.explanation}`);
    expect({ fixture: fixture.name, found: [...found].sort() }).toEqual({ fixture: fixture.name, found: [...wanted].sort() });
    for (const exp of fixture.expected) {
      const hit = result.findings.find((x) => x.type === exp.type && x.value === exp.value)!;
      if (exp.chain) expect({ value: exp.value, chain: hit.chain }).toEqual({ value: exp.value, chain: exp.chain });
      if (exp.detector) expect({ value: exp.value, detector: hit.detector }).toEqual({ value: exp.value, detector: exp.detector });
      expect(hit.explanation.length).toBeGreaterThan(20);
    }
    void report;
  });

  afterAll(() => {
    const { truePositives: tp, falsePositives: fp, falseNegatives: fn } = totals;
    const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
    const recall = tp + fn === 0 ? 1 : tp / (tp + fn);
    process.stdout.write(`corpus: ${corpus.length} fixtures, ${tp} true positives, ${fp} false positives, ${fn} missed — precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}\n`);
  });
});
