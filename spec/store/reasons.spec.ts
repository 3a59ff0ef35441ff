/** lib/store/reasons: the closed set of STORE_ERROR reasons is stable. */
import { readFileSync } from 'fs';
import { join } from 'path';
import { StoreErrorReason } from '../../lib/store/reasons';

describe('StoreErrorReason', () => {
  test('holds exactly the stable reason strings', () => {
    expect(Object.values(StoreErrorReason).sort()).toEqual([
      'backend',
      'backend_missing',
      'backend_unloadable',
      'corrupt',
      'tampered',
      'unknown_format',
      'unknown_schema',
      'unknown_storage_key',
      'wrong_key',
    ]);
  });

  test('every reason the sealed-blob known answers expect is one of them', () => {
    const kat = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'own', 'sealed-blob.json'), 'utf8')) as {
      invalid: { reason: string }[];
    };
    const all: readonly string[] = Object.values(StoreErrorReason);
    for (const c of kat.invalid) expect(all).toContain(c.reason);
  });
});
