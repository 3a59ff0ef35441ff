/** The sealed-blob format (lib/store/sealed-blob.ts, sealed by StorageCipher) against its known-answer file. */
import { readFileSync } from 'fs';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { fromHex, toHex } from '../../lib/crypto';
import { E2EError, ErrorCode } from '../../lib/errors';
import { StorageCipher } from '../../lib/store';
import { SEALED_HEADER_BYTES, SEALED_OVERHEAD, readSealedBlob, sealedBlobHeader, writeSealedBlob } from '../../lib/store/sealed-blob';
import { expectE2EError } from '../helpers/expect-error';

/** Nonces the next seals draw, in order (the KAT's own, to pin the seal direction). */
const nonces: Uint8Array[] = [];
jest.mock('../../lib/crypto/random', () => {
  const actual = jest.requireActual<typeof import('../../lib/crypto/random')>('../../lib/crypto/random');
  return {
    ...actual,
    randomBytes: (n: number): Uint8Array => (n === 24 && nonces.length > 0 ? (nonces.shift() as Uint8Array) : actual.randomBytes(n)),
  };
});

interface Kat {
  storageKey: string;
  previousKeys: string[];
  valid: Array<{
    name: string;
    sealedWith: 'current' | 'previous';
    context: string;
    plaintext: string;
    blob: string;
    needsReseal: boolean;
  }>;
  invalid: Array<{ name: string; context: string; blob: string; code: ErrorCode; reason: string; message: string }>;
}

const kat = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'own', 'sealed-blob.json'), 'utf8')) as Kat;

describe('sealed blob known answers (spec/vectors/own/sealed-blob.json)', () => {
  let cipher: StorageCipher;
  let old: StorageCipher;
  beforeAll(async () => {
    await ready();
    cipher = new StorageCipher(fromHex(kat.storageKey), { previousKeys: kat.previousKeys.map(fromHex) });
    old = new StorageCipher(fromHex(kat.previousKeys[0] as string));
  });

  test('the file holds every case', () => {
    expect(kat.valid).toHaveLength(5);
    expect(kat.invalid).toHaveLength(19);
  });

  test.each(kat.valid.map((c) => [c.name, c] as const))('%s: opens to exactly its plaintext', (_name, c) => {
    expect(toHex(cipher.open(fromHex(c.blob), c.context))).toBe(c.plaintext);
    expect(cipher.needsReseal(fromHex(c.blob))).toBe(c.needsReseal);
  });

  test.each(kat.valid.map((c) => [c.name, c] as const))('%s: seals to exactly its bytes with its nonce', (_name, c) => {
    nonces.push(fromHex(c.blob).slice(12, 36));
    const sealer = c.sealedWith === 'current' ? cipher : old;
    expect(toHex(sealer.seal(fromHex(c.plaintext), c.context))).toBe(c.blob);
    expect(nonces).toHaveLength(0);
  });

  test.each(kat.invalid.map((c) => [c.name, c] as const))('%s: refused with exactly its error', (_name, c) => {
    const e: E2EError = expectE2EError(() => cipher.open(fromHex(c.blob), c.context), c.code);
    expect({ reason: e.reason, message: e.message }).toEqual({ reason: c.reason, message: c.message });
  });
});

describe('sealed blob layout (lib/store/sealed-blob.ts)', () => {
  beforeAll(() => ready());

  test('reads each known blob into its fields, and writes them back to the same bytes', () => {
    expect([SEALED_HEADER_BYTES, SEALED_OVERHEAD]).toEqual([12, 52]);
    for (const c of kat.valid) {
      const blob = fromHex(c.blob);
      const p = readSealedBlob(blob);
      expect(p.version).toBe(1);
      expect(toHex(p.keyId)).toBe(c.blob.slice(8, 24));
      expect(toHex(p.nonce)).toBe(c.blob.slice(24, 72));
      expect(p.sealed.length).toBe(c.plaintext.length / 2 + 16);
      expect(toHex(writeSealedBlob(sealedBlobHeader(p.version, p.keyId), p.nonce, p.sealed))).toBe(c.blob);
    }
  });

  test('fields are copies: changing the blob afterwards changes nothing read', () => {
    const blob = fromHex((kat.valid[2] as Kat['valid'][number]).blob);
    const p = readSealedBlob(blob);
    const before = toHex(p.sealed);
    blob.fill(0);
    expect(toHex(p.sealed)).toBe(before);
  });

  test('too short or without the magic: MALFORMED_MESSAGE (the cipher reports STORE_ERROR unknown_format)', () => {
    const blob = fromHex((kat.valid[0] as Kat['valid'][number]).blob); // exactly SEALED_OVERHEAD bytes
    expect(readSealedBlob(blob).sealed.length).toBe(16);
    for (const n of [0, 2, 3, 12, 36, 51]) expectE2EError(() => readSealedBlob(blob.subarray(0, n)), 'MALFORMED_MESSAGE');
    const bad = Uint8Array.from(blob);
    bad[1] ^= 1;
    expectE2EError(() => readSealedBlob(bad), 'MALFORMED_MESSAGE');
    // Another version is read, not refused: the cipher names the format it does not support.
    const v2 = Uint8Array.from(blob);
    v2[3] = 2;
    expect(readSealedBlob(v2).version).toBe(2);
  });
});
