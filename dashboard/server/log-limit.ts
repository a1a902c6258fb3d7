/**
 * Log lines caused by clients (malformed requests, refused origins, failed handlers) are worth
 * seeing, but a hostile client must not be able to fill the terminal or the disk with them: at most
 * `perWindow` lines per window, then one line saying how many were left out.
 */
export class LimitedLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;

  constructor(private readonly write: (message: string) => void, private readonly perWindow = 20, private readonly windowMs = 60_000) {}

  line(message: string): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      if (this.suppressed) this.write(`dashboard: ${this.suppressed} more such lines were left out in the last ${Math.round(this.windowMs / 1000)} s`);
      this.windowStart = now;
      this.written = 0;
      this.suppressed = 0;
    }
    if (this.written >= this.perWindow) {
      this.suppressed++;
      return;
    }
    this.written++;
    this.write(`dashboard: ${message}`);
  }
}
