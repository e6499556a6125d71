// Bounded waiting: every loop here ends by a deadline, whatever the callee does.

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** The default bound of every wait in the harness, in milliseconds. */
export const WAIT_MS = 10_000;

/** The error every timeout of the harness throws (`err.code === 'ETIMEDOUT'`). */
export class TimeoutError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'TimeoutError';
    this.code = 'ETIMEDOUT';
  }
}

/**
 * Settles like `promise`, or rejects with a TimeoutError after `ms`.
 * `promise` may also be a function `(signal) => promise`; its signal aborts on the timeout.
 */
export function withTimeout(promise, what, ms = WAIT_MS) {
  const ctl = new AbortController();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const err = new TimeoutError(`timed out after ${ms} ms: ${what}`);
      ctl.abort(err);
      reject(err);
    }, ms);
  });
  let work;
  try {
    work = Promise.resolve(typeof promise === 'function' ? promise(ctl.signal) : promise);
  } catch (e) {
    work = Promise.reject(e);
  }
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `fn({ attempt, signal })` until it returns a truthy value, and returns that value.
 * A throw counts as "not yet" (the last one is quoted if the wait times out).
 *
 * options (or a number, taken as `timeout`):
 *   timeout   total bound in ms (default WAIT_MS); a call of fn that hangs is cut off by it
 *   interval  pause between attempts in ms (default 50)
 *   signal    an AbortSignal that ends the wait at once, rejecting with its reason
 *
 * The `signal` handed to fn aborts when the wait ends (timeout or outer abort), so a
 * fetch inside fn can pass it on.
 */
export async function waitFor(what, fn, options = {}) {
  const { timeout = WAIT_MS, interval = 50, signal } = typeof options === 'number' ? { timeout: options } : options;
  const deadline = Date.now() + timeout;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(signal.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let last;
  try {
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw signal.reason;
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const v = await raceAbort(withTimeout(fn({ attempt, signal: ctl.signal }), what, left), ctl.signal);
        if (v) return v;
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        last = e;
      }
      const pause = Math.min(interval, deadline - Date.now());
      if (pause <= 0) break;
      await raceAbort(sleep(pause), ctl.signal);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ctl.abort(new TimeoutError(`wait for ${what} ended`));
  }
  const detail = last && !(last instanceof TimeoutError) ? `: ${last.message}` : '';
  throw new TimeoutError(`timed out after ${timeout} ms waiting for ${what}${detail}`, last ? { cause: last } : undefined);
}

// Rejects with signal.reason as soon as `signal` aborts.
function raceAbort(promise, signal) {
  if (signal.aborted) return Promise.reject(signal.reason);
  let onAbort;
  const aborted = new Promise((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/**
 * A TCP port that was free on `host` a moment ago. Another process may take it before
 * the caller binds it: callers that spawn a server on it retry (see Gateway.start).
 */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs `spawn` up to `attempts` times, calling `stop` after each failure, while
 * `again(error)` says the failure may be a race for a port (a server that took the
 * port between freePort() and its bind); resolves with spawn's value.
 */
export async function retryOnPortRace(spawn, stop, again, attempts = 3) {
  let lastError;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await spawn();
    } catch (e) {
      lastError = e;
      await stop();
      if (!again(e)) break;
    }
  }
  throw lastError;
}
