/**
 * A huge form through the live path (real proxy, real analysis worker with its 1 s budget and its
 * 512 MB heap, real SQLite file): with --body-limit raised, a 64 MB form whose first pair is the
 * IMEI is stored whole, and its analysis reports the IMEI and notes that the rest was not read —
 * it neither yields nothing nor takes the worker down.
 */
import * as http from 'http';
import { Origin, startHttpOrigin } from './helpers/origin';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';

const IMEI = '490154203237518';
const MiB = 1024 * 1024;

describe('a 64 MB form body in the live pipeline', () => {
  let ph: TestPhonehome;
  let origin: Origin;
  beforeAll(async () => {
    origin = await startHttpOrigin();
    ph = await startTestPhonehome({ bodyLimit: 96 * MiB });
  });
  afterAll(async () => {
    await ph?.stop();
    await origin?.close();
  });

  test('the IMEI in its first bytes becomes a finding, and the notes say how far the body was read', async () => {
    const body = Buffer.alloc(64 * MiB, 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&');
    body.write(`IMEI=${IMEI}&model=TA-1046&`);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: ph.proxyPort, method: 'POST', path: `http://upload.test:${origin.port}/batch`,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(200);
    type Analysed = { request_body_size: number; finding_types: string; analysis_notes: string; analysis_state: number };
    const row = await eventually(() => ph.flows("url LIKE '%/batch' AND analysis_state <> 0")[0] as unknown as Analysed | undefined, 60_000, 'the flow analysed');
    expect(row.request_body_size).toBe(64 * MiB);
    expect(row.finding_types).toContain('imei');
    const notes = JSON.parse(row.analysis_notes) as string[];
    expect(notes).toContainEqual(expect.stringMatching(/^form at body read up to byte \d+ of 67108864; the rest was not read$/));
    expect(row.analysis_state).toBe(1);
    expect(ph.pipeline?.stats().crashes).toBe(0);
  }, 120_000);
});
