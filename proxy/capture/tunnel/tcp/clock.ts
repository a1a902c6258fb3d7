/**
 * Time as the TCP machine sees it: injected, so unit tests drive a simulated clock (a 10 MB
 * transfer at 5% loss takes minutes of TCP time and well under a second of test time) and the
 * tunnel uses the real one.
 */
export type TimerHandle = { readonly __timer: true } | object;

export interface TcpClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const realClock: TcpClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
