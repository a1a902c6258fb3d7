/**
 * The analysis worker lowers its own thread's priority so that the proxy goes first when CPU is
 * short: checked on a real worker thread, reading the kernel's per-thread nice value.
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { analysisNice, DEFAULT_ANALYSIS_NICE } from '../../../proxy/pipeline/thread-priority';

const COMPILED = path.resolve(__dirname, '../../../dist/proxy/pipeline/thread-priority.js');

function niceOfThread(tid: number): number {
  // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value (after the parenthesised name).
  const stat = require('fs').readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8') as string;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

const linux = process.platform === 'linux' ? describe : describe.skip;

linux('analysis thread priority', () => {
  it('lowers the calling worker thread only, not the proxy thread', async () => {
    const before = os.getPriority(process.pid);
    const w = new Worker(
      `const { parentPort } = require('worker_threads');
       const p = require(${JSON.stringify(COMPILED)});
       const tid = p.lowerThisThreadPriority(7);
       parentPort.postMessage(tid);
       setTimeout(() => {}, 2000);`,
      { eval: true },
    );
    const tid = await new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    try {
      expect(tid).toBeGreaterThan(0);
      expect(tid).not.toBe(process.pid);
      expect(niceOfThread(tid)).toBe(Math.min(19, before + 7));
      expect(os.getPriority(process.pid)).toBe(before);
      expect(niceOfThread(process.pid)).toBe(before);
    } finally {
      await w.terminate();
    }
  });

  it('takes its nice value from PHONEHOME_ANALYSIS_NICE, clamped, defaulting to normal priority', () => {
    expect(DEFAULT_ANALYSIS_NICE).toBe(0);
    expect(analysisNice({})).toBe(DEFAULT_ANALYSIS_NICE);
    expect(analysisNice({ PHONEHOME_ANALYSIS_NICE: '0' })).toBe(0);
    expect(analysisNice({ PHONEHOME_ANALYSIS_NICE: '40' })).toBe(19);
    expect(analysisNice({ PHONEHOME_ANALYSIS_NICE: 'high' })).toBe(DEFAULT_ANALYSIS_NICE);
  });
});
