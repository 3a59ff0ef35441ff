/** The AMR ratchet state format (lib/ratchet/state-codec.ts) against its known-answer file. */
import { readFileSync } from 'fs';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { fromHex, toHex } from '../../lib/crypto';
import { ErrorCode } from '../../lib/errors';
import { RatchetState } from '../../lib/ratchet';
import { expectE2EError } from '../helpers/expect-error';
import { ratchetStateFields as fields } from '../helpers/ratchet-state-fields';

beforeAll(() => ready());

interface Kat {
  valid: Array<{ name: string; hex: string; fields: Record<string, unknown> }>;
  invalid: Array<{ name: string; hex: string; code: ErrorCode }>;
}

const kat = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'own', 'ratchet-state.json'), 'utf8')) as Kat;

describe('ratchet state known answers (spec/vectors/own/ratchet-state.json)', () => {
  test('the file holds every case', () => {
    expect(kat.valid).toHaveLength(4);
    expect(kat.invalid).toHaveLength(24);
  });

  test.each(kat.valid.map((c) => [c.name, c] as const))('%s: parses to exactly its fields and saves to exactly its bytes', (_name, c) => {
    const s = RatchetState.fromBytes(fromHex(c.hex));
    expect(fields(s)).toEqual(c.fields);
    expect(toHex(s.toBytes())).toBe(c.hex);
  });

  test.each(kat.invalid.map((c) => [c.name, c] as const))('%s: refused', (_name, c) => {
    expectE2EError(() => RatchetState.fromBytes(fromHex(c.hex)), c.code);
  });

  test('a Node Buffer is read the same and copied out of', () => {
    const c = kat.valid[2];
    const buf = Buffer.from(c.hex, 'hex');
    const s = RatchetState.fromBytes(buf);
    buf.fill(0);
    expect(toHex(s.toBytes())).toBe(c.hex);
  });

  test('not bytes: MALFORMED_MESSAGE', () => {
    expectE2EError(() => RatchetState.fromBytes('414d5201' as never), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromBytes(null as never), 'MALFORMED_MESSAGE');
  });
});
