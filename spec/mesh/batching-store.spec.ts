/** BatchingSessionStore: compare-and-swap on its own versions, write-behind, newest state once per flush. */
import { ready } from '../../lib/sodium';
import { InMemoryStore } from '../../lib/store';
import { BatchingSessionStore } from '../../lib/mesh/batching-store';
import { expectE2EErrorAsync } from '../helpers/expect-error';

beforeAll(ready);

test('saves stay in memory until flush; a flush writes the newest state once per session', async () => {
  const inner = new InMemoryStore();
  let writes = 0;
  const save = inner.saveSession.bind(inner);
  inner.saveSession = (l, p, d, v) => {
    writes++;
    return save(l, p, d, v);
  };
  const s = new BatchingSessionStore(inner);
  let v = 0;
  for (let i = 1; i <= 50; i++) v = await s.saveSession('me', 'peer', new Uint8Array([i]), v);
  expect(v).toBe(50);
  expect(inner.loadSession('me', 'peer')).toBeNull();
  expect(await s.loadSession('me', 'peer')).toEqual({ version: 50, data: new Uint8Array([50]) });
  expect(await s.listSessions('me')).toEqual(['peer']);
  await Promise.all([s.flush(), s.flush()]);
  expect(writes).toBe(1);
  expect(inner.loadSession('me', 'peer')?.data).toEqual(new Uint8Array([50]));
  expect(s.pending).toBe(0);
});

test('a save based on a stale version is refused; deletes are immediate', async () => {
  const inner = new InMemoryStore();
  const s = new BatchingSessionStore(inner);
  await s.saveSession('me', 'peer', new Uint8Array([1]), 0);
  await expectE2EErrorAsync(s.saveSession('me', 'peer', new Uint8Array([2]), 0), 'STALE_STATE');
  await s.flush();
  expect(await s.deleteSession('me', 'peer')).toBe(true);
  expect(inner.loadSession('me', 'peer')).toBeNull();
  expect(await s.loadSession('me', 'peer')).toBeNull();
});

test('a failed flush keeps the pending state for the next one', async () => {
  const inner = new InMemoryStore();
  const s = new BatchingSessionStore(inner);
  await s.saveSession('me', 'peer', new Uint8Array([1]), 0);
  const save = inner.saveSession.bind(inner);
  inner.saveSession = () => {
    throw new Error('disk full');
  };
  await expect(s.flush()).rejects.toThrow('disk full');
  expect(s.pending).toBe(1);
  inner.saveSession = save;
  await s.flush();
  expect(inner.loadSession('me', 'peer')?.data).toEqual(new Uint8Array([1]));
});
