/**
 * Turning traffic into stored Flows: a capped copy of each body (the bytes keep streaming; only the
 * first `limit` bytes are held), and a recorder that stores each finished flow in its own
 * transaction and then tells a listener. A failing store or listener is logged, never thrown into
 * the proxy: recording must not take traffic down with it.
 */
import type { Body, Flow, Header } from '../flow';
import type { Store } from '../store';

export class BodyTap {
  private readonly chunks: Buffer[] = [];
  private held = 0;
  size = 0;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.size += chunk.length;
    const room = this.limit - this.held;
    if (room <= 0) return;
    // Copy: the chunk may be a view into a pooled buffer that is reused after the write.
    const piece = chunk.length <= room ? Buffer.from(chunk) : Buffer.from(chunk.subarray(0, room));
    this.chunks.push(piece);
    this.held += piece.length;
  }

  toBody(): Body {
    return { bytes: Buffer.concat(this.chunks, this.held), size: this.size, truncated: this.held < this.size };
  }
}

/** node's rawHeaders ([k, v, k, v...]) as ordered pairs. */
export function headerPairs(raw: readonly string[]): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

export type Logger = (line: string) => void;

export const consoleLogger: Logger = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

export class FlowRecorder {
  private failures = 0;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly onFlow?: (flow: Flow) => void,
  ) {}

  record(flow: Flow): void {
    if (flow.requestBody.truncated || flow.responseBody.truncated) {
      if (!flow.tags.includes('body-truncated')) flow.tags.push('body-truncated');
    }
    try {
      this.store.flows.insert(flow);
    } catch (err) {
      this.failures++;
      if (this.failures <= 5 || this.failures % 1000 === 0) this.log(`recording failed (${this.failures} so far): ${(err as Error).message}`);
      return;
    }
    if (!this.onFlow) return;
    try {
      this.onFlow(flow);
    } catch (err) {
      this.log(`onFlow listener failed for flow ${flow.id}: ${(err as Error).message}`);
    }
  }
}
