import Redis from 'ioredis';
import { RedisStore } from '../../lib/store';
import { ready } from '../../lib/sodium';
import { toBase64, utf8 } from '../../lib/crypto';
import { storeConformance } from './conformance';
import {
  classicBundle,
  clearPrefix,
  describeRedis,
  makeAgent,
  makePqAgent,
  plain,
  publicKems,
  publicOtks,
  randomNamespace,
} from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

describeRedis('RedisStore', (url) => {
  const ns = randomNamespace();
  const clients: Redis[] = [];
  const client = (): Redis => {
    // Give up quickly when nothing answers, so CI fails fast instead of retrying for minutes.
    const c = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: (n) => (n > 3 ? null : 100) });
    clients.push(c);
    return c;
  };
  let admin: Redis;

  beforeAll(async () => {
    await ready();
    admin = client();
    try {
      await admin.ping();
    } catch {
      throw new Error(`Redis at ${url} does not answer: start redis-server (CI must run these tests)`);
    }
  });
  afterAll(async () => {
    await clearPrefix(admin, ns).catch(() => undefined);
    clients.forEach((c) => c.disconnect());
  });

  let suite = 0;
  storeConformance('RedisStore', {
    open: async () => new RedisStore({ client: admin, namespace: `${ns}-c${++suite}` }),
    reopen: async (previous) => new RedisStore({ client: client(), namespace: (previous as RedisStore).namespace }),
  });

  describe('Redis specifics', () => {
    it('keeps every key under its namespace, DIDs percent-encoded', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-layout` });
      const bob = makeAgent(1);
      await s.storeBundle('did:mesh:{bob}', bob.getPublicBundle({ otkId: 0 }));
      await s.saveSession('did:mesh:{bob}', 'did:mesh:alice', utf8('x'), 0);
      await s.saveKeyManager('did:mesh:{bob}', utf8('k'), 0);
      await s.markEstablishment('did:mesh:{bob}', 0, 'fp');
      const keys = (await admin.keys(`${ns}-layout:*`)).sort();
      expect(keys).toEqual(
        [
          `${ns}-layout:s:{did%3Amesh%3A%7Bbob%7D}:did%3Amesh%3Aalice`,
          `${ns}-layout:si:{did%3Amesh%3A%7Bbob%7D}`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:bundle`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:keys`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:pool`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:queue`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:replay-index`,
          `${ns}-layout:{did%3Amesh%3A%7Bbob%7D}:replay:0`,
        ].sort(),
      );
      expect(await s.clearNamespace()).toBe(8);
      expect(await admin.keys(`${ns}-layout:*`)).toEqual([]);
    });

    it('keeps the KEM pool under the DID hash tag; the last-resort KEM pre-key lives in the base; removeBundle deletes them all', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-kemlayout` });
      const bob = makePqAgent(1, 2);
      await s.storeBundle('did:mesh:{bob}', bob.getPublicBundle({ otkId: 0 }));
      await s.addKemPreKeys('did:mesh:{bob}', publicKems(bob));
      await s.claimBundle('did:mesh:{bob}');
      const t = `${ns}-kemlayout:{did%3Amesh%3A%7Bbob%7D}`;
      expect((await admin.keys(`${ns}-kemlayout:*`)).sort()).toEqual(
        [`${t}:bundle`, `${t}:claimed`, `${t}:kem-claimed`, `${t}:kem-pool`, `${t}:kem-queue`].sort(),
      );
      const base = JSON.parse((await admin.get(`${t}:bundle`)) as string) as Record<string, unknown>;
      expect(base.kid).toBe((bob.lastResortKemPreKey as { keyId: number }).keyId);
      expect(await s.removeBundle('did:mesh:{bob}')).toBe(true);
      expect(await admin.keys(`${ns}-kemlayout:*`)).toEqual([]);
    });

    it('reads a base stored before KEM pre-keys (no KEM fields) as a classic bundle, and keeps a merged last resort readable', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-oldbase` });
      const bob = makePqAgent();
      const classic = classicBundle(bob.getPublicBundle());
      const old = JSON.stringify({
        ik: toBase64(classic.identityKey),
        ed: toBase64(classic.identityKeyEd),
        spk: toBase64(classic.signedPreKey),
        sig: toBase64(classic.signedPreKeySignature),
        id: classic.signedPreKeyId,
      });
      await admin.set(`${ns}-oldbase:{bob}:bundle`, old);
      expect(plain(await s.getBundle('bob'))).toEqual(plain(classic));
      await s.storeBundle('bob', bob.getPublicBundle()); // now with the last-resort KEM pre-key
      bob.generateSignedPreKey();
      await s.storeBundle('bob', classicBundle(bob.getPublicBundle())); // merged by the script: the KEM fields stay
      expect(plain(await s.claimBundle('bob'))).toEqual(plain(bob.getPublicBundle()));
    });

    it('keeps namespaces apart: no colon in a namespace, and clearNamespace deletes exactly its own keys (finding 10)', async () => {
      for (const bad of [`${ns}-x:s`, `${ns}-x:eu`, 'a:b', 'x*', 'x{y}', 'x y', 'é', 'x'.repeat(129)]) {
        await expectE2EErrorAsync(() => new RedisStore({ client: admin, namespace: bad }), 'INVALID_ARGUMENT');
      }
      const names = [`${ns}-x`, `${ns}-x-s`, `${ns}-xs`, `${ns}-x.eu`, `${ns}-x_eu`];
      const stores = names.map((n) => new RedisStore({ client: admin, namespace: n }));
      for (const s of stores) {
        await s.saveSession('s', 'eu', utf8('x'), 0);
        await s.saveSession('did:a', 'did:b', utf8('y'), 0);
        await s.saveKeyManager('s', utf8('k'), 0);
      }
      const count = async (n: string): Promise<number> => (await admin.keys(`${n}:*`)).length;
      const before = await Promise.all(names.map(count));
      expect(await stores[0].clearNamespace()).toBe(before[0]);
      expect(await Promise.all(names.map(count))).toEqual([0, ...before.slice(1)]);
      for (const s of stores.slice(1)) expect((await s.loadSession('s', 'eu'))?.version).toBe(1);
    });

    it('copies caller bytes before a command is queued (a Buffer zeroed while the client connects)', async () => {
      const lazy = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      clients.push(lazy);
      const s = new RedisStore({ client: lazy, namespace: `${ns}-queued` });
      const data = Buffer.from('sealed session bytes');
      const saving = s.saveSession('bob', 'alice', data, 0);
      const inboxData = Buffer.from('sealed inbox bytes');
      const inboxSave = s.saveSessionWithInbox('bob', 'carol', Buffer.from('s'), 0, { id: 'm1', data: inboxData });
      data.fill(0);
      inboxData.fill(0);
      await Promise.all([saving, inboxSave]);
      expect(Buffer.from((await s.loadSession('bob', 'alice'))?.data as Uint8Array).toString()).toBe('sealed session bytes');
      expect(Buffer.from((await s.loadInboxEntry('bob', 'carol', 'm1'))?.data as Uint8Array).toString()).toBe('sealed inbox bytes');
    });

    it('applies the optional TTLs, and none by default', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-ttl`, sessionTtlMs: 60_000, bundleTtlMs: 120_000 });
      const bob = makeAgent(2);
      await s.storeBundle('bob', bob.getPublicBundle({ otkId: 0 }));
      await s.addOneTimePreKeys('bob', publicOtks(bob).slice(1));
      await s.saveSession('bob', 'alice', utf8('x'), 0);
      const pttl = async (k: string): Promise<number> => admin.pttl(`${ns}-ttl:${k}`);
      for (const k of ['{bob}:bundle', '{bob}:pool', '{bob}:queue']) {
        const t = await pttl(k);
        expect(t > 60_000 && t <= 120_000).toBe(true);
      }
      const t = await pttl('s:{bob}:alice');
      expect(t > 0 && t <= 60_000).toBe(true);
      // The KEM pool expires with the bundle; a new storeBundle renews it.
      const carol = makePqAgent(0, 2);
      await s.storeBundle('carol', carol.getPublicBundle());
      await s.addKemPreKeys('carol', publicKems(carol));
      await s.claimBundle('carol');
      for (const k of ['{carol}:bundle', '{carol}:kem-pool', '{carol}:kem-queue']) {
        const tk = await pttl(k);
        expect(tk > 60_000 && tk <= 120_000).toBe(true);
      }
      await admin.pexpire(`${ns}-ttl:{carol}:kem-pool`, 5);
      await s.storeBundle('carol', carol.getPublicBundle());
      const renewed = await pttl('{carol}:kem-pool');
      expect(renewed > 60_000 && renewed <= 120_000).toBe(true);
      // The inbox lives as long as its session: every save of the session renews both.
      await s.saveSessionWithInbox('bob', 'alice', utf8('y'), 1, { id: 'm', data: utf8('p') });
      await admin.pexpire(`${ns}-ttl:ih:{bob}:alice`, 5);
      await admin.pexpire(`${ns}-ttl:iz:{bob}:alice`, 5);
      await s.saveSession('bob', 'alice', utf8('z'), 2);
      for (const k of ['ih:{bob}:alice', 'iz:{bob}:alice']) {
        const ti = await pttl(k);
        expect(ti > 50_000 && ti <= 60_000).toBe(true);
      }
      const plainStore = new RedisStore({ client: admin, namespace: `${ns}-nottl` });
      await plainStore.saveSession('bob', 'alice', utf8('x'), 0);
      expect(await admin.pttl(`${ns}-nottl:s:{bob}:alice`)).toBe(-1);
    });

    it('forgets an expired session, also in listSessions', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-expire`, sessionTtlMs: 30 });
      await s.saveSession('bob', 'alice', utf8('x'), 0);
      await new Promise((r) => setTimeout(r, 150));
      expect(await s.loadSession('bob', 'alice')).toBeNull();
      expect(await s.listSessions('bob')).toEqual([]);
      expect(await s.saveSession('bob', 'alice', utf8('y'), 0)).toBe(1);
    });

    it('reloads its scripts after the server forgets them', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-flush` });
      const bob = makeAgent(2);
      await s.storeBundle('bob', bob.getPublicBundle({ otkId: 0 }));
      await admin.script('FLUSH');
      expect((await s.claimBundle('bob'))?.oneTimePreKeyId).toBe(0);
    });

    it('reports unreadable data as STORE_ERROR (corrupt)', async () => {
      const s = new RedisStore({ client: admin, namespace: `${ns}-corrupt` });
      await admin.set(`${ns}-corrupt:{bob}:bundle`, 'not json');
      await expectE2EErrorAsync(() => s.getBundle('bob'), 'STORE_ERROR', 'corrupt');
      await admin.set(`${ns}-corrupt:{eve}:bundle`, JSON.stringify({ ik: 'AAAA', ed: 'x', spk: 'y', sig: 'z', id: 1 }));
      await expectE2EErrorAsync(() => s.claimBundle('eve'), 'STORE_ERROR', 'corrupt');
      await admin.hset(`${ns}-corrupt:s:{bob}:alice`, 'v', 'x', 'd', 'data');
      await expectE2EErrorAsync(() => s.loadSession('bob', 'alice'), 'STORE_ERROR', 'corrupt');
      const bob = makeAgent(1);
      await s.storeBundle('carol', bob.getPublicBundle({ otkId: 0 }));
      await admin.hset(`${ns}-corrupt:{carol}:pool`, '0', '***');
      await expectE2EErrorAsync(() => s.claimBundle('carol'), 'STORE_ERROR', 'corrupt');
      const pq = makePqAgent(0, 1);
      await s.storeBundle('frank', pq.getPublicBundle());
      await s.addKemPreKeys('frank', publicKems(pq));
      const kemId = String(publicKems(pq)[0].keyId);
      for (const bad of [
        '***',
        'AAAA.AAAA',
        `${toBase64(new Uint8Array(1184))}`,
        `${toBase64(new Uint8Array(1183))}.${toBase64(new Uint8Array(64))}`,
      ]) {
        await admin.hset(`${ns}-corrupt:{frank}:kem-pool`, kemId, bad);
        await expectE2EErrorAsync(() => s.getBundle('frank'), 'STORE_ERROR', 'corrupt');
      }
      await expectE2EErrorAsync(() => s.claimBundle('frank'), 'STORE_ERROR', 'corrupt');
      const partial = JSON.parse((await admin.get(`${ns}-corrupt:{frank}:bundle`)) as string) as Record<string, unknown>;
      delete partial.ksig;
      await admin.set(`${ns}-corrupt:{frank}:bundle`, JSON.stringify(partial));
      await expectE2EErrorAsync(() => s.getBundle('frank'), 'STORE_ERROR', 'corrupt');
      await admin.set(`${ns}-corrupt:{frank}:bundle`, JSON.stringify({ ...partial, ksig: toBase64(new Uint8Array(64)), kid: -1 }));
      await expectE2EErrorAsync(() => s.getBundle('frank'), 'STORE_ERROR', 'corrupt');
      await admin.set(`${ns}-corrupt:{frank}:bundle`, JSON.stringify({ ...partial, ksig: toBase64(new Uint8Array(64)), kem: 'AAAA' }));
      await expectE2EErrorAsync(() => s.getBundle('frank'), 'STORE_ERROR', 'corrupt');
      await admin.sadd(`${ns}-corrupt:si:{dave}`, '%E0%A4%A');
      await admin.hset(`${ns}-corrupt:s:{dave}:%E0%A4%A`, 'v', '1', 'd', 'x');
      await expectE2EErrorAsync(() => s.listSessions('dave'), 'STORE_ERROR', 'corrupt');
    });

    it('fails with STORE_ERROR when Redis cannot be reached', async () => {
      const dead = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const s = new RedisStore({ client: dead, namespace: `${ns}-dead` });
      await expectE2EErrorAsync(() => s.getBundle('bob'), 'STORE_ERROR', 'backend');
      await expectE2EErrorAsync(() => s.saveSession('bob', 'alice', utf8('x'), 0), 'STORE_ERROR', 'backend');
      await expectE2EErrorAsync(() => s.countOneTimePreKeys('bob'), 'STORE_ERROR', 'backend');
      await expectE2EErrorAsync(() => s.listSessions('bob'), 'STORE_ERROR', 'backend');
      dead.disconnect();
    });

    it('validates its options', async () => {
      await expectE2EErrorAsync(() => new RedisStore(undefined as never), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => new RedisStore({ client: {} as never }), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => new RedisStore({ client: admin, namespace: 'a b' }), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => new RedisStore({ client: admin, namespace: '' }), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => new RedisStore({ client: admin, sessionTtlMs: 0 }), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => new RedisStore({ client: admin, bundleTtlMs: 1.5 }), 'INVALID_ARGUMENT');
      expect(new RedisStore({ client: admin }).namespace).toBe('agentmesh');
    });
  });
});
