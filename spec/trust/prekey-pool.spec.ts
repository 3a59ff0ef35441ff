import { ready } from '../../lib/sodium';
import { toHex } from '../../lib/crypto';
import { X3DHKeyManager } from '../../lib/x3dh';
import { InMemoryStore } from '../../lib/store';
import { AgentIdentity } from '../../lib/trust';
import { PreKeyPublisher, storeCall } from '../../lib/trust/prekey-pool';
import type { PreKeyStore } from '../../lib/store/types';
import { rejectionOf } from '../helpers/expect-error';

beforeAll(() => ready());

function manager(): X3DHKeyManager {
  return AgentIdentity.generate().createKeyManager();
}

describe('PreKeyPublisher without a store', () => {
  test('makes the signed pre-key once, hands each one-time key out once, keeps the pool topped up', async () => {
    const mgr = manager();
    const pub = new PreKeyPublisher(mgr, 'did:mesh:bob', undefined, 3);
    const b1 = await pub.publish();
    const spk = mgr.signedPreKey!;
    expect([b1.signedPreKeyId, b1.oneTimePreKeyId, mgr.oneTimePreKeyIds]).toEqual([spk.keyId, 0, [0, 1, 2, 3]]);
    const b2 = await pub.publish();
    expect([b2.signedPreKeyId, b2.oneTimePreKeyId, mgr.oneTimePreKeyIds]).toEqual([spk.keyId, 1, [0, 1, 2, 3, 4]]);
    expect(toHex(b1.oneTimePreKey!)).not.toBe(toHex(b2.oneTimePreKey!));
  });

  test('uses an existing signed pre-key and existing unused one-time keys', async () => {
    const mgr = manager();
    const spk = mgr.generateSignedPreKey();
    mgr.generateOneTimePreKeys(5);
    const b = await new PreKeyPublisher(mgr, 'did:mesh:bob', undefined, 3).publish();
    expect([b.signedPreKeyId, b.oneTimePreKeyId, mgr.oneTimePreKeyIds.length]).toEqual([spk.keyId, 0, 5]);
  });
});

describe('PreKeyPublisher with a store', () => {
  test('stores the bundle, fills the pool to its size after claiming one for the caller', async () => {
    const mgr = manager();
    const store = new InMemoryStore();
    const pub = new PreKeyPublisher(mgr, 'did:mesh:bob', store, 3);
    const b1 = await pub.publish();
    expect([b1.oneTimePreKeyId, store.countOneTimePreKeys('did:mesh:bob'), mgr.oneTimePreKeyIds.length]).toEqual([0, 3, 4]);
    const b2 = await pub.publish();
    expect([b2.oneTimePreKeyId, store.countOneTimePreKeys('did:mesh:bob'), mgr.oneTimePreKeyIds.length]).toEqual([1, 3, 5]);
    expect(toHex(store.getBundle('did:mesh:bob')!.identityKeyEd)).toBe(toHex(mgr.identityKeyEd));
  });

  test('a store that already binds the DID to another key refuses (IDENTITY_MISMATCH)', async () => {
    const store = new InMemoryStore();
    await new PreKeyPublisher(manager(), 'did:mesh:bob', store, 1).publish();
    const e = await rejectionOf(new PreKeyPublisher(manager(), 'did:mesh:bob', store, 1).publish());
    expect(e.code).toBe('IDENTITY_MISMATCH');
  });

  test('a store that loses the bundle, or fails with a foreign error, gives STORE_ERROR', async () => {
    const store = new InMemoryStore();
    const lossy: PreKeyStore = {
      storeBundle: (d, b) => store.storeBundle(d, b),
      countOneTimePreKeys: (d) => store.countOneTimePreKeys(d),
      addOneTimePreKeys: (d, k) => store.addOneTimePreKeys(d, k),
      consumeOneTimeKey: () => false,
      claimBundle: async () => null,
      getBundle: (d) => store.getBundle(d),
      removeBundle: (d) => store.removeBundle(d),
      addKemPreKeys: (d, k) => store.addKemPreKeys(d, k),
      consumeKemPreKey: () => false,
      countKemPreKeys: (d) => store.countKemPreKeys(d),
    };
    const lost = (await rejectionOf(new PreKeyPublisher(manager(), 'did:mesh:bob', lossy, 1).publish())) as {
      code?: string;
      reason?: string;
    };
    expect([lost.code, lost.reason]).toEqual(['STORE_ERROR', 'corrupt']);
    const broken = {
      ...lossy,
      storeBundle: () => {
        throw new Error('disk full');
      },
    };
    const failed = (await rejectionOf(new PreKeyPublisher(manager(), 'did:mesh:bob', broken, 1).publish())) as {
      code?: string;
      reason?: string;
      cause?: Error;
    };
    expect([failed.code, failed.reason, failed.cause?.message]).toEqual(['STORE_ERROR', 'backend', 'disk full']);
    const e = (await rejectionOf(
      storeCall(() => {
        throw new Error('disk full');
      }),
    )) as { reason?: string; cause?: unknown; message?: string };
    expect([e.reason, (e.cause as Error).message]).toEqual(['backend', 'disk full']);
    expect(e.message).not.toMatch(/disk full/); // the foreign text stays out of our message
  });

  test('storeCall passes E2EErrors through and returns values', async () => {
    expect(await storeCall(() => 7)).toBe(7);
    expect(await storeCall(async () => 8)).toBe(8);
  });
});
