import { InMemoryPreKeyStore, InMemoryStore } from '../../lib/store';
import { ready } from '../../lib/sodium';
import { storeConformance } from './conformance';
import { makeAgent } from './helpers';

storeConformance('InMemoryStore', { open: async () => new InMemoryStore() });

describe('InMemoryPreKeyStore', () => {
  beforeAll(() => ready());

  it('is the tutorial API, synchronous', () => {
    const bobMgr = makeAgent(10);
    const store = new InMemoryPreKeyStore();
    store.storeBundle('did:mesh:bob', bobMgr.getPublicBundle({ otkId: 0 }));
    const bundle = store.getBundle('did:mesh:bob');
    expect(bundle?.oneTimePreKeyId).toBe(0);
    expect(store.consumeOneTimeKey('did:mesh:bob', 0)).toBe(true);
    expect(store.consumeOneTimeKey('did:mesh:bob', 0)).toBe(false);
    expect(store).toBeInstanceOf(InMemoryStore);
  });

  it('forgets everything on close', () => {
    const store = new InMemoryStore();
    store.storeBundle('did:mesh:bob', makeAgent().getPublicBundle());
    store.saveSession('a', 'b', new Uint8Array([1]), 0);
    store.markEstablishment('a', 0, 'fp');
    store.close();
    expect(store.getBundle('did:mesh:bob')).toBeNull();
    expect(store.loadSession('a', 'b')).toBeNull();
    expect(store.markEstablishment('a', 0, 'fp')).toBe(true);
  });
});
