/** A tiny typed event emitter (no `node:events`: the mesh client runs in every runtime). */

/** Listener map: event name → listener signature. */
export type EventMap = { [event: string]: (...args: never[]) => unknown };

/** Emits typed events; listeners that throw are reported to `onListenerError`, never to the emitter. */
export class Emitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<E[keyof E]>>();

  /** Adds a listener. */
  on<K extends keyof E>(event: K, listener: E[K]): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return this;
  }

  /** Adds a listener called once. */
  once<K extends keyof E>(event: K, listener: E[K]): this {
    const wrapped = ((...args: Parameters<E[K]>) => {
      this.off(event, wrapped);
      return (listener as (...a: Parameters<E[K]>) => unknown)(...args);
    }) as unknown as E[K];
    return this.on(event, wrapped);
  }

  /** Removes a listener. */
  off<K extends keyof E>(event: K, listener: E[K]): this {
    this.#listeners.get(event)?.delete(listener);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount<K extends keyof E>(event: K): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** The listeners of `event` (a copy). */
  protected listeners<K extends keyof E>(event: K): E[K][] {
    return [...(this.#listeners.get(event) ?? [])] as E[K][];
  }

  /** Calls every listener of `event`; exceptions go to {@link onListenerError}. */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    for (const l of this.listeners(event)) {
      try {
        const r = (l as (...a: Parameters<E[K]>) => unknown)(...args);
        if (r instanceof Promise) r.catch((e: unknown) => this.onListenerError(e));
      } catch (e) {
        this.onListenerError(e);
      }
    }
  }

  /** Where a listener's exception goes (default: dropped). */
  protected onListenerError(_e: unknown): void {
    // overridden by MeshAgent
  }
}
