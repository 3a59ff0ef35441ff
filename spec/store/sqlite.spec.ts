import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Database = require('better-sqlite3');
import { SQLITE_SCHEMA_VERSION, SqliteStore } from '../../lib/store';
import { ready } from '../../lib/sodium';
import { utf8 } from '../../lib/crypto';
import { storeConformance } from './conformance';
import { makeAgent, plain, publicOtks } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-sqlite-'));
let files = 0;
const freshPath = (): string => join(dir, `store-${++files}.sqlite`);
const paths = new WeakMap<object, string>();

afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeConformance('SqliteStore', {
  open: async () => {
    const path = freshPath();
    const s = new SqliteStore(path, { synchronous: 'NORMAL' });
    paths.set(s, path);
    return s;
  },
  reopen: async (previous) => {
    const path = paths.get(previous) as string;
    await previous.close();
    const s = new SqliteStore(path);
    paths.set(s, path);
    return s;
  },
});

describe('SqliteStore', () => {
  beforeAll(() => ready());

  it('uses WAL mode and records its schema version', () => {
    const path = freshPath();
    new SqliteStore(path).close();
    const db = new Database(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: String(SQLITE_SCHEMA_VERSION) });
    db.close();
  });

  it('refuses a file written by a newer release', async () => {
    const path = freshPath();
    new SqliteStore(path).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db.close();
    await expectE2EErrorAsync(() => new SqliteStore(path), 'STORE_ERROR', 'unknown_schema');
  });

  it('upgrades a version-1 file (no inbox) in place, keeping its data', async () => {
    const path = freshPath();
    const v1 = new SqliteStore(path);
    v1.saveSession('did:mesh:a', 'did:mesh:b', utf8('old session'), 0);
    v1.close();
    const db = new Database(path);
    db.exec('DROP TABLE inbox');
    db.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
    db.close();
    const s = new SqliteStore(path);
    expect(Buffer.from(s.loadSession('did:mesh:a', 'did:mesh:b')?.data as Uint8Array).toString()).toBe('old session');
    expect(s.saveSessionWithInbox('did:mesh:a', 'did:mesh:b', utf8('s2'), 1, { id: 'm', data: utf8('p') })).toBe(2);
    s.close();
    const check = new Database(path);
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: String(SQLITE_SCHEMA_VERSION) });
    check.close();
  });

  it('upgrades a version-2 file (no KEM pre-key tables) in place: its bundles, pools and sessions stay, KEM pools work', async () => {
    const path = freshPath();
    const bob = makeAgent(3);
    const v2 = new SqliteStore(path);
    v2.storeBundle('did:mesh:bob', bob.getPublicBundle({ otkId: 0 }));
    v2.addOneTimePreKeys('did:mesh:bob', publicOtks(bob).slice(1));
    expect(v2.claimBundle('did:mesh:bob')?.oneTimePreKeyId).toBe(0);
    v2.saveSession('did:mesh:a', 'did:mesh:b', utf8('old session'), 0);
    v2.close();
    const db = new Database(path);
    for (const t of ['last_resort_kem_pre_keys', 'kem_pre_keys', 'claimed_kem_pre_keys']) db.exec(`DROP TABLE ${t}`);
    db.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
    db.close();
    const s = new SqliteStore(path);
    expect(plain(s.getBundle('did:mesh:bob'))).toEqual(plain(bob.getPublicBundle({ otkId: 1 }))); // a classic bundle, as before
    expect(s.consumeOneTimeKey('did:mesh:bob', 0)).toBe(false);
    expect(Buffer.from(s.loadSession('did:mesh:a', 'did:mesh:b')?.data as Uint8Array).toString()).toBe('old session');
    const lastResort = bob.generateLastResortKemPreKey();
    s.storeBundle('did:mesh:bob', bob.getPublicBundle());
    s.addKemPreKeys('did:mesh:bob', bob.generateKemPreKeys(1));
    const claimed = s.claimBundle('did:mesh:bob');
    expect([claimed?.oneTimePreKeyId, claimed?.kemPreKeyId]).toEqual([1, lastResort.keyId + 1]);
    expect(s.claimBundle('did:mesh:bob')?.kemPreKeyId).toBe(lastResort.keyId);
    s.close();
    const check = new Database(path);
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: String(SQLITE_SCHEMA_VERSION) });
    check.close();
  });

  it('fails with STORE_ERROR on a file that is not a database', async () => {
    const path = freshPath();
    writeFileSync(path, 'this is not an SQLite database, but long enough to have a header....................');
    await expectE2EErrorAsync(() => new SqliteStore(path), 'STORE_ERROR', 'backend');
    await expectE2EErrorAsync(() => new SqliteStore(join(dir, 'missing-dir', 'x.sqlite')), 'STORE_ERROR', 'backend');
  });

  it('fails with STORE_ERROR once closed (close is idempotent)', async () => {
    const s = new SqliteStore(freshPath());
    s.close();
    s.close();
    await expectE2EErrorAsync(() => s.getBundle('did:mesh:bob'), 'STORE_ERROR', 'backend');
    await expectE2EErrorAsync(() => s.saveSession('a', 'b', utf8('x'), 0), 'STORE_ERROR', 'backend');
    await expectE2EErrorAsync(() => s.storeBundle('did:mesh:bob', makeAgent().getPublicBundle()), 'STORE_ERROR', 'backend');
  });

  it('validates its options', async () => {
    await expectE2EErrorAsync(() => new SqliteStore(''), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => new SqliteStore(7 as never), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => new SqliteStore(freshPath(), { synchronous: 'OFF' as never }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => new SqliteStore(freshPath(), { busyTimeoutMs: -1 }), 'INVALID_ARGUMENT');
    await expectE2EErrorAsync(() => new SqliteStore(freshPath(), { busyTimeoutMs: 1.5 }), 'INVALID_ARGUMENT');
  });

  it('is synchronous: results, not promises', () => {
    const s = new SqliteStore(freshPath());
    expect(s.countOneTimePreKeys('did:mesh:bob')).toBe(0);
    expect(s.saveSession('a', 'b', utf8('x'), 0)).toBe(1);
    s.close();
  });
});
