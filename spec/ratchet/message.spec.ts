import { ready } from '../../lib/sodium';
import { fromHex, toHex, toBase64 } from '../../lib/crypto';
import { EncryptedMessage, decodeHeader, encodeHeader } from '../../lib/ratchet';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// The reference's envelope of "hello bob" (spec/vectors/agt/conversation-1.txt).
const ENVELOPE =
  '00000028878f9ee59a45db7ccc4bfca58515fb81dd2d8e312944d0b5947f0802bc74eb1e0000000000000000e837c1d5fae83418f912ddc870b4e6add6b51b9c9e461b59f2858e365d3d60fa07dda1e26c';

describe('MessageHeader', () => {
  test('40-byte form: key ‖ u32be(PN) ‖ u32be(N)', () => {
    const h = { dhPublicKey: new Uint8Array(32).fill(7), previousChainLength: 0x01020304, messageNumber: 0xfffffffe };
    const b = encodeHeader(h);
    expect(toHex(b)).toBe('07'.repeat(32) + '01020304' + 'fffffffe');
    expect(decodeHeader(b)).toEqual(h);
    expectE2EError(() => decodeHeader(b.subarray(1)), 'MALFORMED_MESSAGE');
    expectE2EError(() => encodeHeader({ ...h, messageNumber: 2 ** 32 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => encodeHeader({ ...h, previousChainLength: -1 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => encodeHeader({ ...h, dhPublicKey: new Uint8Array(31) }), 'MALFORMED_MESSAGE');
  });
});

describe('EncryptedMessage', () => {
  test('deserialize/serialize is the identity on the reference envelope', () => {
    const m = EncryptedMessage.deserialize(fromHex(ENVELOPE));
    expect(toHex(m.serialize())).toBe(ENVELOPE);
    expect(m.header.messageNumber).toBe(0);
    expect(toHex(m.ciphertext)).toBe(ENVELOPE.slice(88));
    // Built from parts, it serializes to the same bytes.
    expect(toHex(new EncryptedMessage(m.header, m.ciphertext).serialize())).toBe(ENVELOPE);
  });

  test('deserialize copies its input', () => {
    const bytes = fromHex(ENVELOPE);
    const m = EncryptedMessage.deserialize(bytes);
    bytes.fill(0);
    expect(toHex(m.serialize())).toBe(ENVELOPE);
  });

  test('JSON transport form: { header: { dh, pn, n }, ciphertext } in standard base64', () => {
    const m = EncryptedMessage.deserialize(fromHex(ENVELOPE));
    const j = m.toJSON();
    expect(j).toEqual({ header: { dh: toBase64(m.header.dhPublicKey), pn: 0, n: 0 }, ciphertext: toBase64(m.ciphertext) });
    expect(toHex(EncryptedMessage.fromJSON(JSON.stringify(j)).serialize())).toBe(ENVELOPE);
  });

  test('malformed inputs are MALFORMED_MESSAGE', () => {
    const good = fromHex(ENVELOPE);
    expectE2EError(() => EncryptedMessage.deserialize(good.subarray(0, 71)), 'MALFORMED_MESSAGE');
    const badPrefix = Uint8Array.from(good);
    badPrefix[3] = 41;
    expectE2EError(() => EncryptedMessage.deserialize(badPrefix), 'MALFORMED_MESSAGE');
    expectE2EError(() => EncryptedMessage.deserialize('x' as never), 'MALFORMED_MESSAGE');
    const j = EncryptedMessage.deserialize(good).toJSON();
    for (const bad of [
      '{',
      'null',
      '[]',
      '{"header":1,"ciphertext":"AA=="}',
      JSON.stringify({ ...j, ciphertext: 'not base64!' }),
      JSON.stringify({ ...j, ciphertext: 'AAAA' }),
      JSON.stringify({ ...j, header: { ...j.header, n: -1 } }),
      JSON.stringify({ ...j, header: { ...j.header, n: 1.5 } }),
      JSON.stringify({ ...j, header: { ...j.header, pn: 2 ** 32 } }),
      JSON.stringify({ ...j, header: { ...j.header, pn: '0' } }),
      JSON.stringify({ ...j, header: { ...j.header, dh: 'AAAA' } }),
      JSON.stringify({ header: j.header }),
    ]) {
      expectE2EError(() => EncryptedMessage.fromJSON(bad), 'MALFORMED_MESSAGE');
    }
  });
});
