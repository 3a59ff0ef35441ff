import { ready } from '../../lib/sodium';
import { fromHex, fromUtf8, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { SEALED_FORMAT_VERSION, STORAGE_KEY_BYTES, StorageCipher, sessionContext } from '../../lib/store';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const KEY_1 = new Uint8Array(32).fill(1);
const CTX = sessionContext('did:mesh:alice', 'did:mesh:bob');
// Sealed by release 0.1.0 under KEY_1 for CTX: later releases must keep opening it (or migrate it).
const PINNED_BLOB =
  '414d53010ccc19aadd504c523d5c72af6e615a5ff636e27b4a6df8f1c72bcc7ea6eb0466642c5e4d635243f9fdffc75c85a293687422de9b46131c541d1469597b32864c2b';

describe('StorageCipher', () => {
  beforeAll(() => ready());

  it('opens a blob sealed by an earlier release (format v1, pinned)', () => {
    expect(fromUtf8(new StorageCipher(KEY_1).open(fromHex(PINNED_BLOB), CTX))).toBe('agentmesh at rest');
    expect([STORAGE_KEY_BYTES, SEALED_FORMAT_VERSION]).toEqual([32, 1]);
  });

  it('seals to "AMS" ‖ version ‖ key id ‖ nonce ‖ ciphertext ‖ tag, with a fresh nonce each time', () => {
    const c = new StorageCipher(KEY_1);
    const a = c.seal(utf8('secret'), CTX);
    const b = c.seal(utf8('secret'), CTX);
    expect(a.length).toBe(4 + 8 + 24 + 6 + 16);
    // Key id = HKDF-SHA256(ikm = key, salt = 32 zero bytes, info = "AgentMesh_Store_v1 key id", 8), computed independently.
    expect(toHex(a.subarray(0, 12))).toBe('414d53010ccc19aadd504c52');
    expect(toHex(a.subarray(12, 36))).not.toBe(toHex(b.subarray(12, 36)));
    expect(fromUtf8(c.open(a, CTX))).toBe('secret');
    expect(toHex(c.open(c.seal(new Uint8Array(0), CTX), CTX))).toBe('');
  });

  it("keeps no view of the caller's key Buffers (current and previous keys zeroed after construction)", () => {
    const key = Buffer.from(randomBytes(32));
    const old = Buffer.from(randomBytes(32));
    const sealedOld = new StorageCipher(Uint8Array.from(old)).seal(utf8('old'), CTX);
    const c = new StorageCipher(key, { previousKeys: [old] });
    const blob = c.seal(utf8('x'), CTX);
    key.fill(0);
    old.fill(0);
    expect(fromUtf8(c.open(blob, CTX))).toBe('x');
    expect(fromUtf8(c.open(sealedOld, CTX))).toBe('old');
    expect(fromUtf8(c.open(c.seal(utf8('y'), CTX), CTX))).toBe('y');
    expect(c.open(blob, CTX).constructor).toBe(Uint8Array);
  });

  it('refuses a blob opened in another slot, modified anywhere, truncated or of another format', async () => {
    const c = new StorageCipher(randomBytes(32));
    const blob = c.seal(randomBytes(100), CTX);
    await expectE2EErrorAsync(() => c.open(blob, sessionContext('did:mesh:alice', 'did:mesh:carol')), 'STORE_ERROR', 'tampered');
    const regions: [number, string][] = [
      [0, 'unknown_format'],
      [3, 'unknown_format'],
      [4, 'unknown_storage_key'],
      [11, 'unknown_storage_key'],
      [12, 'tampered'],
      [35, 'tampered'],
      [36, 'tampered'],
      [blob.length - 1, 'tampered'],
    ];
    for (const [i, reason] of regions) {
      const bad = Uint8Array.from(blob);
      bad[i] ^= 0x40;
      await expectE2EErrorAsync(() => c.open(bad, CTX), 'STORE_ERROR', reason);
    }
    await expectE2EErrorAsync(() => c.open(blob.subarray(0, 4 + 8 + 24 + 15), CTX), 'STORE_ERROR', 'unknown_format');
    await expectE2EErrorAsync(() => c.open(blob.subarray(0, blob.length - 1), CTX), 'STORE_ERROR', 'tampered');
    await expectE2EErrorAsync(() => c.open('blob' as never, CTX), 'STORE_ERROR', 'unknown_format');
    const v2 = Uint8Array.from(blob);
    v2[3] = 2;
    await expectE2EErrorAsync(() => c.open(v2, CTX), 'STORE_ERROR', 'unknown_format');
  });

  it('rotates keys: opens with previous keys, says which blobs to re-seal', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const old = new StorageCipher(oldKey).seal(utf8('v'), CTX);
    await expectE2EErrorAsync(() => new StorageCipher(newKey).open(old, CTX), 'STORE_ERROR', 'unknown_storage_key');
    const rotated = new StorageCipher(newKey, { previousKeys: [oldKey] });
    expect(fromUtf8(rotated.open(old, CTX))).toBe('v');
    expect(rotated.needsReseal(old)).toBe(true);
    const fresh = rotated.seal(rotated.open(old, CTX), CTX);
    expect(rotated.needsReseal(fresh)).toBe(false);
    expect(fromUtf8(new StorageCipher(newKey).open(fresh, CTX))).toBe('v');
    await expectE2EErrorAsync(() => rotated.needsReseal(new Uint8Array(3)), 'STORE_ERROR', 'unknown_format');
  });

  it('validates its inputs', async () => {
    await expectE2EErrorAsync(() => new StorageCipher(new Uint8Array(31)), 'INVALID_KEY');
    await expectE2EErrorAsync(() => new StorageCipher('key' as never), 'INVALID_KEY');
    await expectE2EErrorAsync(() => new StorageCipher(KEY_1, { previousKeys: [new Uint8Array(16)] }), 'INVALID_KEY');
    await expectE2EErrorAsync(() => new StorageCipher(KEY_1, { previousKeys: 'k' as never }), 'INVALID_ARGUMENT');
    const c = new StorageCipher(KEY_1);
    await expectE2EErrorAsync(() => c.seal('text' as never, CTX), 'INVALID_ARGUMENT');
    for (const ctx of ['', 'x'.repeat(4097), 5]) {
      await expectE2EErrorAsync(() => c.seal(utf8('x'), ctx as string), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => c.open(c.seal(utf8('x'), CTX), ctx as string), 'INVALID_ARGUMENT');
    }
  });

  it('refuses to work once wiped', async () => {
    const c = new StorageCipher(KEY_1);
    const blob = c.seal(utf8('x'), CTX);
    c.wipe();
    await expectE2EErrorAsync(() => c.seal(utf8('x'), CTX), 'INVALID_STATE');
    await expectE2EErrorAsync(() => c.open(blob, CTX), 'INVALID_STATE');
    await expectE2EErrorAsync(() => c.needsReseal(blob), 'INVALID_STATE');
    expect(toHex(KEY_1)).toBe('01'.repeat(32)); // the caller's key is not touched
  });
});
