/** lib/util/serial-queue: order, isolation of failures, and synchronous tasks. */
import { SerialQueue } from '../../lib/util/serial-queue';

/** A promise and its resolvers. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SerialQueue', () => {
  test('a task starts only after the one before it settled, in queue order', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    const gate = deferred<void>();
    const a = q.run(async () => {
      log.push('a start');
      await gate.promise;
      log.push('a end');
      return 'a';
    });
    const b = q.run(() => {
      log.push('b');
      return 'b';
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual(['a start']);
    gate.resolve();
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    expect(log).toEqual(['a start', 'a end', 'b']);
  });

  test('a failure rejects only its own caller; the next task still runs', async () => {
    const q = new SerialQueue();
    const failing = q.run(async () => {
      throw new Error('boom');
    });
    const throwing = q.run(() => {
      throw new Error('sync boom');
    });
    const next = q.run(() => 42);
    await expect(failing).rejects.toThrow('boom');
    await expect(throwing).rejects.toThrow('sync boom');
    expect(await next).toBe(42);
  });

  test('no task runs synchronously inside run(), even on an idle queue', async () => {
    const q = new SerialQueue();
    let ran = false;
    const p = q.run(() => {
      ran = true;
    });
    expect(ran).toBe(false);
    await p;
    expect(ran).toBe(true);
  });

  test('queues are independent', async () => {
    const q1 = new SerialQueue();
    const q2 = new SerialQueue();
    const gate = deferred<void>();
    const blocked = q1.run(() => gate.promise);
    expect(await q2.run(() => 'free')).toBe('free');
    gate.resolve();
    await blocked;
  });
});
