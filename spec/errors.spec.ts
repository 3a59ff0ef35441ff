/** The one error type (lib/errors.ts): stable codes, the E2EError shape, isE2EError. */
import { E2EError, ErrorCode, isE2EError } from '../lib/errors';

describe('ErrorCode', () => {
  test('is exactly the documented set of stable codes, each value equal to its name', () => {
    expect(Object.keys(ErrorCode)).toEqual([
      'NOT_READY',
      'INVALID_KEY',
      'INVALID_ARGUMENT',
      'BAD_SIGNATURE',
      'IDENTITY_MISMATCH',
      'OTK_NOT_FOUND',
      'SPK_NOT_FOUND',
      'KEM_NOT_FOUND',
      'POST_QUANTUM_REQUIRED',
      'DECRYPT_FAILED',
      'DUPLICATE_MESSAGE',
      'TOO_MANY_SKIPPED',
      'MALFORMED_MESSAGE',
      'MESSAGE_TOO_LARGE',
      'COUNTER_EXHAUSTED',
      'INVALID_STATE',
      'CHANNEL_CLOSED',
      'TRUST_REJECTED',
      'STALE_STATE',
      'STORE_ERROR',
    ]);
    for (const [name, value] of Object.entries(ErrorCode)) expect(value).toBe(name);
  });
});

describe('E2EError', () => {
  test('is an Error with name, code, message and an optional reason', () => {
    const e = new E2EError('TRUST_REJECTED', 'peer below the minimum trust score', 'TRUST_SCORE_TOO_LOW');
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(E2EError);
    expect(e.name).toBe('E2EError');
    expect(e.code).toBe('TRUST_REJECTED');
    expect(e.message).toBe('peer below the minimum trust score');
    expect(e.reason).toBe('TRUST_SCORE_TOO_LOW');
    expect(String(e)).toBe('E2EError: peer below the minimum trust score');
    expect(e.stack).toMatch(/^E2EError: peer below/);
  });

  test('keeps a cause as the standard own, non-enumerable `cause`, out of the message and the JSON', () => {
    const foreign = new Error('SQLITE_FULL: database or disk is full');
    const e = new E2EError('STORE_ERROR', 'storage backend failed [backend]', 'backend', { cause: foreign });
    expect(e.cause).toBe(foreign);
    expect(Object.getOwnPropertyDescriptor(e, 'cause')).toEqual({ value: foreign, enumerable: false, writable: true, configurable: true });
    expect(Object.keys(e)).not.toContain('cause');
    expect(e.message).toBe('storage backend failed [backend]');
    expect(JSON.stringify(e)).not.toMatch(/SQLITE_FULL/);
    // As Error does: an explicit undefined cause is a cause; none given is none.
    expect(Object.prototype.hasOwnProperty.call(new E2EError('STORE_ERROR', 'x', undefined, { cause: undefined }), 'cause')).toBe(true);
    for (const options of [undefined, {}, null, 'cause', 7]) {
      const plain = new E2EError('STORE_ERROR', 'x', undefined, options as unknown as { cause?: unknown });
      expect(Object.prototype.hasOwnProperty.call(plain, 'cause')).toBe(false);
    }
  });

  test('a hostile options object gives no cause, never a throw', () => {
    const trap = new Proxy(
      {},
      {
        has() {
          throw new Error('trap');
        },
      },
    );
    const getter = Object.defineProperty({}, 'cause', {
      get() {
        throw new Error('getter');
      },
    });
    for (const options of [trap, getter]) {
      const e = new E2EError('STORE_ERROR', 'x', 'backend', options);
      expect([e.code, e.reason, Object.prototype.hasOwnProperty.call(e, 'cause')]).toEqual(['STORE_ERROR', 'backend', false]);
    }
  });

  test('reason is undefined when not given', () => {
    const e = new E2EError('DECRYPT_FAILED', 'authentication failed');
    expect(e.reason).toBeUndefined();
  });

  test('can be matched the way the specs do it', () => {
    expect(() => {
      throw new E2EError('INVALID_KEY', 'k must be 32 bytes, got 31 bytes');
    }).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }));
  });
});

describe('isE2EError', () => {
  const e = new E2EError('DUPLICATE_MESSAGE', 'replay');

  test('recognizes E2EErrors, with or without a code', () => {
    expect(isE2EError(e)).toBe(true);
    expect(isE2EError(e, 'DUPLICATE_MESSAGE')).toBe(true);
    expect(isE2EError(e, 'DECRYPT_FAILED')).toBe(false);
  });

  test.each([
    ['an Error', new Error('replay')],
    ['a TypeError', new TypeError('x')],
    ['an object shaped like one', { name: 'E2EError', code: 'DUPLICATE_MESSAGE', message: 'replay' }],
    ['a string', 'DUPLICATE_MESSAGE'],
    ['null', null],
    ['undefined', undefined],
  ])('is false for %s', (_, value) => {
    expect(isE2EError(value)).toBe(false);
    expect(isE2EError(value, 'DUPLICATE_MESSAGE')).toBe(false);
  });
});
