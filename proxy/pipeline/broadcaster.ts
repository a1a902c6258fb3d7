/**
 * In-process fan-out of stored messages (flow, alert) from the pipeline to the dashboard's
 * WebSocket clients. Messages arrive in seq order, without gaps: the pipeline publishes through its
 * EventSequencer (sequencer.ts), whichever thread committed them.
 */
import type { StoredEvent } from '../store/events';

export type EventListener = (event: StoredEvent) => void;

export class Broadcaster {
  private readonly listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: StoredEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        process.emitWarning(`broadcast listener failed: ${(err as Error).message}`);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
