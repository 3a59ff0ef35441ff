/** Known answers of the establishment's binary and JSON forms (`spec/vectors/own/establishment.json`). */
import { ready } from '../../lib/sodium';
import { ErrorCode } from '../../lib/errors';
import { fromHex, toHex } from '../../lib/crypto';
import { ChannelEstablishment } from '../../lib/channel';
import { expectE2EError } from '../helpers/expect-error';
import vectors from '../vectors/own/establishment.json';

beforeAll(() => ready());

interface Fields {
  initiatorIdentityKey: string;
  ephemeralPublicKey: string;
  usedOneTimeKeyId: number | null;
  signedPreKeyId: number | null;
}

function fieldsOf(e: ChannelEstablishment): Fields {
  return {
    initiatorIdentityKey: toHex(e.initiatorIdentityKey),
    ephemeralPublicKey: toHex(e.ephemeralPublicKey),
    usedOneTimeKeyId: e.usedOneTimeKeyId ?? null,
    signedPreKeyId: e.signedPreKeyId ?? null,
  };
}

describe('establishment forms, known answers', () => {
  test('the file holds the cases it is meant to', () => {
    expect([vectors.valid.length, vectors.invalidBytes.length, vectors.invalidJson.length]).toEqual([5, 7, 5]);
  });

  test.each(vectors.valid)('$name: fields → exact bytes and JSON; both parse back to the fields', ({ fields, bytes, json }) => {
    const e = new ChannelEstablishment({
      initiatorIdentityKey: fromHex(fields.initiatorIdentityKey),
      ephemeralPublicKey: fromHex(fields.ephemeralPublicKey),
      usedOneTimeKeyId: fields.usedOneTimeKeyId,
      signedPreKeyId: fields.signedPreKeyId,
    });
    expect(toHex(e.serialize())).toBe(bytes);
    expect(JSON.stringify(e.toJSON())).toBe(json);
    expect(fieldsOf(ChannelEstablishment.deserialize(fromHex(bytes)))).toEqual(fields);
    expect(fieldsOf(ChannelEstablishment.fromJSON(json))).toEqual(fields);
    const buf = Buffer.from(bytes, 'hex');
    const fromBuffer = ChannelEstablishment.deserialize(buf);
    buf.fill(0);
    expect(fieldsOf(fromBuffer)).toEqual(fields);
  });

  test.each(vectors.invalidBytes)('bytes, $name: $error', ({ bytes, error }) => {
    expectE2EError(() => ChannelEstablishment.deserialize(fromHex(bytes)), error as ErrorCode);
  });

  test.each(vectors.invalidJson)('JSON, $name: $error', ({ json, error }) => {
    expectE2EError(() => ChannelEstablishment.fromJSON(json), error as ErrorCode);
  });
});
