/**
 * A one-line progress bar for long imports (percent of the file's bytes read), drawn only on a
 * terminal and only for files large enough to be worth it, redrawn at most a few times a second.
 */

/** Smaller files finish before a bar would be useful. */
export const PROGRESS_MIN_BYTES = 16 * 1024 * 1024;
const REDRAW_MS = 200;
const WIDTH = 30;

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): boolean;
}

export function progressLine(label: string, done: number, total: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * WIDTH);
  const mb = (n: number) => (n / (1024 * 1024)).toFixed(0);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${mb(done)}/${mb(total)} MB`;
}

export class ProgressBar {
  private last = 0;
  private drawn = false;

  constructor(private readonly out: ProgressStream, private readonly label: string, private readonly force = false) {}

  update(done: number, total: number): void {
    if (!this.force && (!this.out.isTTY || total < PROGRESS_MIN_BYTES)) return;
    const now = Date.now();
    if (now - this.last < REDRAW_MS && done < total) return;
    this.last = now;
    this.drawn = true;
    this.out.write(`\r${progressLine(this.label.slice(0, 40), done, total)}`);
  }

  /** Ends the bar's line so that later messages start on their own. */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
