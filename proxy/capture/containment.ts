/**
 * No request can end the process. Two layers:
 *
 * 1. Every listener where a client's input enters the proxy (request, connect, upgrade, clientError,
 *    the front door, tunnels, VPN mode's hand-off) runs through `contained`: a synchronous throw
 *    or a rejected promise is logged with the client, method and (truncated) target, and that
 *    connection alone is answered or closed.
 * 2. What those listeners start (upstream sockets, TLS, timers, callbacks) runs inside a connection
 *    scope (AsyncLocalStorage), and so do the events of the client's own socket (`scopeEvents`: an
 *    accepted socket's events would otherwise run in no scope), so an exception thrown later from
 *    one of their callbacks can still be attributed to that connection. `installLastResortHandler` (used by `phonehome start` only, never
 *    in a library or test process) turns such an exception into a log line and a closed connection.
 *    An exception outside every scope is not ours to judge safe: it is printed and the process exits
 *    with status 1, as Node would.
 */
import { AsyncLocalStorage } from 'async_hooks';
import type { EventEmitter } from 'events';
import type { Duplex } from 'stream';
import type { Logger } from './recording';

export interface ConnectionScope {
  /** Who: the client's address (and port). */
  client: string;
  method?: string;
  /** The request target or tunnel destination as the client wrote it. */
  target?: string;
  /** The client's connection, closed when its handling fails. */
  socket?: Duplex;
}

const scopes = new AsyncLocalStorage<ConnectionScope>();
/**
 * An exception thrown out of `run` leaves its scope before the uncaught-exception handler runs, so
 * it carries its scope out with it, here.
 */
const thrownIn = new WeakMap<object, ConnectionScope>();

/** Runs `work` (and everything it starts) inside `scope`. */
export function inConnection<T>(scope: ConnectionScope, work: () => T): T {
  return scopes.run(scope, () => {
    try {
      return work();
    } catch (err) {
      if (typeof err === 'object' && err !== null && !thrownIn.has(err)) thrownIn.set(err, scope);
      throw err;
    }
  });
}

export function currentConnection(): ConnectionScope | undefined {
  return scopes.getStore();
}

/** Every event `emitter` emits from now on is handled inside `scope` (one AsyncLocalStorage.run per event). */
export function scopeEvents(emitter: EventEmitter, scope: ConnectionScope): void {
  const emit = emitter.emit;
  emitter.emit = function emitInScope(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    return inConnection(scope, () => emit.call(this, event, ...args));
  };
}

const TARGET_SHOWN = 100;

export function describeConnection(scope: ConnectionScope): string {
  const parts = [`client ${scope.client || '?'}`];
  if (scope.method) parts.push(JSON.stringify(scope.method.slice(0, 20)));
  if (scope.target !== undefined) {
    const t = scope.target.length > TARGET_SHOWN ? `${scope.target.slice(0, TARGET_SHOWN)}…` : scope.target;
    parts.push(JSON.stringify(t));
  }
  return parts.join(' ');
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * Runs a listener body in `scope`; if it throws or its promise rejects, logs `what failed for
 * <client, method, target>` and calls `recover` (answer the client or close its connection).
 */
export function contained(log: Logger, what: string, scope: ConnectionScope, work: () => unknown, recover?: () => void): void {
  const fail = (err: unknown) => {
    log(`${what} failed for ${describeConnection(scope)}: ${errorText(err)}`);
    try {
      if (recover) recover();
      else scope.socket?.destroy();
    } catch (again) {
      log(`closing after that failure failed too: ${errorText(again)}`);
      scope.socket?.destroy();
    }
  };
  try {
    const result = inConnection(scope, work);
    if (result instanceof Promise) result.catch(fail);
  } catch (err) {
    fail(err);
  }
}

/**
 * For `phonehome start`: an uncaught exception inside a connection scope is logged and closes that
 * connection, and phonehome keeps serving; any other is printed and ends the process (status 1).
 * Returns a function that removes the handler.
 */
export function installLastResortHandler(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  const onUncaught = (err: unknown, origin: string) => {
    const scope = scopes.getStore() ?? (typeof err === 'object' && err !== null ? thrownIn.get(err) : undefined);
    if (scope) {
      log(`internal error while handling ${describeConnection(scope)} (${origin}); that connection is closed, phonehome keeps running: ${errorText(err)}`);
      try {
        scope.socket?.destroy();
      } catch {
        // Already torn down.
      }
      return;
    }
    process.stderr.write(`phonehome: fatal internal error (${origin}), exiting: ${errorText(err)}\n`);
    exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return () => process.removeListener('uncaughtException', onUncaught);
}
