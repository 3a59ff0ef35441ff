/**
 * A store that fails on purpose, as disks and networks do: each call may fail before it reaches the
 * store (nothing written) or after it (written, but the caller hears an error, as with a connection
 * dropped before the reply), with a plain `Error`, a rejected promise, or a driver-like object.
 */
import { AgentStore } from '../../lib/store';

/** What one store call does: pass, or fail before or after reaching the store, in some form. */
export type Fault = 'ok' | 'before' | 'after' | 'before-reject' | 'after-reject' | 'before-odd';

/** Every fault kind (for generators). */
export const FAULTS: readonly Fault[] = ['ok', 'before', 'after', 'before-reject', 'after-reject', 'before-odd'];

/** The foreign errors the faulty store throws (never `E2EError`s: the library must wrap them). */
export class BackendDown extends Error {
  readonly code = 'ECONNRESET';
  constructor(readonly method: string) {
    super(`connection reset during ${method} (secret-looking text that must not reach the message)`);
  }
}

/**
 * Wraps `inner`: the methods named in `methods` (default: every method) take their next fault from
 * `next()`. `log` records (method, fault) of every faulted call; `calls` counts calls per method.
 */
export function faultyStore<T extends object = AgentStore>(
  inner: T,
  next: () => Fault,
  methods?: readonly string[],
): { store: T; log: [string, Fault][]; calls: Map<string, number>; off: () => void } {
  const log: [string, Fault][] = [];
  const calls = new Map<string, number>();
  let enabled = true;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || typeof prop !== 'string') return v;
      const fn = v as (...a: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        calls.set(prop, (calls.get(prop) ?? 0) + 1);
        const fault: Fault = enabled && (methods === undefined || methods.includes(prop)) ? next() : 'ok';
        if (fault !== 'ok') log.push([prop, fault]);
        switch (fault) {
          case 'ok':
            return fn.apply(target, args);
          case 'before':
            throw new BackendDown(prop);
          case 'before-reject':
            return Promise.reject(new BackendDown(prop));
          case 'before-odd':
            // Not even an Error: a thrown string, as some drivers and custom stores do.
            throw `down: ${prop}`; // eslint-disable-line no-throw-literal
          case 'after': {
            const r = fn.apply(target, args);
            return Promise.resolve(r).then(() => {
              throw new BackendDown(prop);
            });
          }
          case 'after-reject':
            return Promise.resolve(fn.apply(target, args)).then(() => Promise.reject(new BackendDown(prop)));
        }
      };
    },
  });
  return { store, log, calls, off: () => void (enabled = false) };
}
