/** The import progress bar: drawn on a terminal for large files only, percent of bytes read, line ended when done. */
import { ProgressBar, PROGRESS_MIN_BYTES, progressLine } from '../../../proxy/commands/progress';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (t: string) => writes.push(t) > 0 };
}

test('the line shows the fraction of bytes read', () => {
  expect(progressLine('big.pcap', 512 * 1024 * 1024, 1024 * 1024 * 1024)).toBe(`big.pcap [${'#'.repeat(15)}${'.'.repeat(15)}]  50%  512/1024 MB`);
});

test('on a terminal, a large file gets a bar that ends at 100% and then a newline', () => {
  const out = stream(true);
  const bar = new ProgressBar(out, 'big.pcap');
  const total = PROGRESS_MIN_BYTES * 4;
  bar.update(total / 4, total);
  bar.update(total, total);
  bar.done();
  expect(out.writes[0]).toMatch(/^\rbig\.pcap \[.*\]  25%/);
  expect(out.writes[out.writes.length - 2]).toMatch(/100%/);
  expect(out.writes[out.writes.length - 1]).toBe('\n');
});

test('nothing is drawn when the output is not a terminal, or for a small file', () => {
  const piped = stream(false);
  new ProgressBar(piped, 'x').update(PROGRESS_MIN_BYTES * 2, PROGRESS_MIN_BYTES * 4);
  const small = stream(true);
  const bar = new ProgressBar(small, 'x');
  bar.update(10, 100);
  bar.done();
  expect(piped.writes).toEqual([]);
  expect(small.writes).toEqual([]);
});
