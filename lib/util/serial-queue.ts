/**
 * A serial async queue: each task starts once every task queued before it has settled, so tasks
 * that read, change and save one state never interleave. A failed task fails only its own caller;
 * the queue goes on with the next. Imports nothing.
 * @internal
 */

/** Runs tasks one after another, in the order they were queued. @internal */
export class SerialQueue {
  /** Settles (never rejects) when the last task queued has. */
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Queues `task`; resolves or rejects as it does. A task that throws synchronously rejects the
   * returned promise, like one that rejects.
   */
  run<T>(task: () => T | PromiseLike<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
