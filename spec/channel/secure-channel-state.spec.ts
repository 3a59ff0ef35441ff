/** Known answers of the channel's saved form, "AMC" (`spec/vectors/own/channel.json`). */
import { ready } from '../../lib/sodium';
import { ErrorCode } from '../../lib/errors';
import { fromHex, toHex } from '../../lib/crypto';
import { SecureChannel } from '../../lib/channel';
import { RatchetState, RatchetStateDict } from '../../lib/ratchet/state';
import { expectE2EError } from '../helpers/expect-error';
import vectors from '../vectors/own/channel.json';

beforeAll(() => ready());

describe('channel saved form, known answers', () => {
  test('the file holds the cases it is meant to', () => {
    expect([vectors.valid.length, vectors.invalidBytes.length]).toEqual([3, 8]);
  });

  test.each(vectors.valid)('$name: bytes → exact fields → exact bytes', ({ messageCount, associatedData, ratchetState, bytes }) => {
    // The ratchet's own bytes carry the skipped keys' times, so its part is pinned through its dict form.
    const u32 = (n: number): string => n.toString(16).padStart(8, '0');
    const head = `414d4301${u32(messageCount)}${u32(associatedData.length / 2)}${associatedData}`;
    expect(bytes.startsWith(head)).toBe(true);
    expect(RatchetState.fromBytes(fromHex(bytes.slice(head.length))).toDict()).toEqual(ratchetState as RatchetStateDict);
    const buf = Buffer.from(bytes, 'hex');
    const channel = SecureChannel.fromBytes(buf);
    buf.fill(0);
    expect(channel.messageCount).toBe(messageCount);
    expect(toHex(channel.associatedData)).toBe(associatedData);
    expect(toHex(channel.toBytes())).toBe(bytes);
  });

  test.each(vectors.invalidBytes)('$name: $error', ({ bytes, error }) => {
    expectE2EError(() => SecureChannel.fromBytes(fromHex(bytes)), error as ErrorCode);
  });
});
