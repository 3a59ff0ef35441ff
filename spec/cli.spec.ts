/**
 * The `agentmesh-e2e` command: `keygen`, `fingerprint`, `inspect`, `--help`, its exit codes and
 * errors on stderr; and that no command prints or stores a secret in the clear.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CliIo, ExitCode, HELP, main, openIdentity, parseIdentityFile } from '../lib/cli';
import {
  AgentIdentity,
  ChannelEstablishment,
  SecureChannel,
  X3DHKeyManager,
  bundleToJSON,
  ed25519KeyPair,
  ready,
  sha256,
  toBase64,
  toHex,
  utf8,
} from '../lib';
import { ensureBuilt } from './reach/helpers';
import { expectE2EError } from './helpers/expect-error';

interface Result {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<Result> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
    env,
    stdin: () => stdin,
  };
  const code = await main(args, io);
  return { code, out, err };
}

let dir = '';
beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'agentmesh-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agentmesh-e2e --help and usage errors', () => {
  test('--help prints the usage and exits 0; no command prints it and exits 2', async () => {
    expect(await cli(['--help'])).toEqual({ code: 0, out: HELP, err: '' });
    expect(await cli(['inspect', '--help'])).toMatchObject({ code: 0, out: HELP });
    expect(await cli([])).toMatchObject({ code: ExitCode.USAGE, out: HELP });
  });

  test.each([
    [['frobnicate'], /unknown command frobnicate/],
    [['inspect'], /inspect takes one argument/],
    [['inspect', 'aa', '--colour'], /Unknown option '--colour'/],
    [['inspect', 'aa', '--as', 'cake'], /--as must be one of envelope, establishment, bundle/],
    [['fingerprint'], /fingerprint takes one argument/],
    [['keygen'], /keygen needs --out FILE/],
    [['keygen', '--out', 'x.json'], /exactly one of --passphrase-env, --passphrase-file, --key-file/],
    [['keygen', '--out', 'x.json', '--passphrase-env', 'NOPE_NOT_SET'], /environment variable NOPE_NOT_SET is not set/],
  ])('%j is a usage error: exit 2, one line on stderr', async (args, re) => {
    const r = await cli(args.map((a) => (a === 'x.json' ? join(dir, a) : a)));
    expect(r.code).toBe(ExitCode.USAGE);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^agentmesh-e2e: USAGE: .*\n$/);
    expect(r.err).toMatch(re);
  });

  test('the built bin runs as a program: shebang, exit status, stderr', () => {
    ensureBuilt();
    const bin = join(__dirname, '..', 'dist', 'cjs', 'cli.js');
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(bin).mode & 0o111).not.toBe(0);
    const ok = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const bad = spawnSync(bin, ['inspect', 'zz!'], { encoding: 'utf8' });
    expect(bad.status).toBe(ExitCode.INVALID_INPUT);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe('agentmesh-e2e: MALFORMED_MESSAGE: input is neither JSON, hex nor base64\n');
  });
});

describe('agentmesh-e2e keygen', () => {
  test('with a passphrase: prints DID, fingerprint and public key; the file (0600) holds the secret sealed only', async () => {
    const out = join(dir, 'alice.identity.json');
    const r = await cli(['keygen', '--out', out, '--passphrase-env', 'PASS'], { PASS: 'correct horse battery staple' });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const text = readFileSync(out, 'utf8');
    const file = parseIdentityFile(text);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(r.out).toBe(
      `did:         ${file.did}\nfingerprint: ${file.fingerprint}\npublic key:  ${file.publicKey}\nsealed to:   ${out} (passphrase (Argon2id))\n`,
    );
    expect(file.protection).toMatchObject({ kdf: 'argon2id13' });

    const identity = openIdentity(file, { passphrase: 'correct horse battery staple' });
    expect(identity.did).toBe(file.did);
    expect(identity.fingerprint).toBe(file.fingerprint);
    const secret = identity.exportSecretKey();
    for (const form of [toHex(secret), toBase64(secret), toHex(secret.subarray(0, 32)), toBase64(secret.subarray(0, 32))]) {
      expect(text).not.toContain(form);
      expect(r.out).not.toContain(form);
    }
    expectE2EError(() => openIdentity(file, { passphrase: 'wrong' }), 'STORE_ERROR', 'wrong_key');
  });

  test('with a key file: creates it (32 bytes, 0600) and reuses it; --json; refuses to overwrite without --force', async () => {
    const keyFile = join(dir, 'storage.key');
    const out = join(dir, 'bob.identity.json');
    const r = await cli(['keygen', '--out', out, '--key-file', keyFile, '--json', '--did', 'did:mesh:bob']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.out) as Record<string, string>;
    expect(printed).toMatchObject({ did: 'did:mesh:bob', file: out, sealedWith: 'key-file' });
    const key = readFileSync(keyFile);
    expect(key.length).toBe(32);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const file = parseIdentityFile(readFileSync(out, 'utf8'));
    expect(openIdentity(file, { key: Uint8Array.from(key) }).publicKey).toEqual(Uint8Array.from(Buffer.from(file.publicKey, 'base64')));

    const again = await cli(['keygen', '--out', out, '--key-file', keyFile]);
    expect(again.code).toBe(ExitCode.IO);
    expect(again.err).toMatch(/exists \(use --force to replace it\)/);
    const forced = await cli(['keygen', '--out', out, '--key-file', keyFile, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(keyFile)).toEqual(key); // the existing key file is used, not replaced
    const hexKey = join(dir, 'hex.key');
    writeFileSync(hexKey, `${key.toString('hex')}\n`);
    const file2 = parseIdentityFile(readFileSync(out, 'utf8'));
    expect(() => openIdentity(file2, { key: Uint8Array.from(key) })).not.toThrow();
    expect((await cli(['keygen', '--out', join(dir, 'c.json'), '--key-file', hexKey])).code).toBe(0);
    writeFileSync(join(dir, 'short.key'), 'abc');
    expect(await cli(['keygen', '--out', join(dir, 'd.json'), '--key-file', join(dir, 'short.key')])).toMatchObject({ code: 1 });
  });
});

describe('agentmesh-e2e fingerprint', () => {
  const id = () => AgentIdentity.generate();

  test('of a public key (hex, base64): its self-certifying DID and fingerprint', async () => {
    const a = id();
    for (const form of [toHex(a.publicKey), toBase64(a.publicKey)]) {
      const r = await cli(['fingerprint', form, '--json']);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toEqual({ did: a.did, publicKey: toBase64(a.publicKey), fingerprint: a.fingerprint });
    }
    const text = await cli(['fingerprint', toHex(a.publicKey)]);
    expect(text.out).toContain(`fingerprint: ${a.fingerprint}\n`);
  });

  test('of a DID: the 8 groups it holds; with --key the whole fingerprint, or IDENTITY_MISMATCH', async () => {
    const a = id();
    const r = await cli(['fingerprint', a.did, '--json']);
    expect(JSON.parse(r.out)).toMatchObject({ did: a.did, fingerprintPrefix: a.fingerprint.split(' ').slice(0, 8).join(' ') });
    const full = await cli(['fingerprint', a.did, '--key', toBase64(a.publicKey), '--json']);
    expect(JSON.parse(full.out)).toMatchObject({ fingerprint: a.fingerprint, selfCertifying: true });
    const wrong = await cli(['fingerprint', a.did, '--key', toBase64(id().publicKey)]);
    expect(wrong).toMatchObject({ code: 1, out: '' });
    expect(wrong.err).toMatch(/^agentmesh-e2e: IDENTITY_MISMATCH: /);
    const named = await cli(['fingerprint', 'did:mesh:alice']);
    expect(named.code).toBe(1);
    expect(named.err).toMatch(/only a registry binds it/);
  });

  test('of an identity file: its DID and the fingerprint of its key', async () => {
    const out = join(dir, 'fp.identity.json');
    await cli(['keygen', '--out', out, '--key-file', join(dir, 'fp.key')]);
    const file = parseIdentityFile(readFileSync(out, 'utf8'));
    const r = await cli(['fingerprint', out, '--json']);
    expect(JSON.parse(r.out)).toEqual({ did: file.did, publicKey: file.publicKey, fingerprint: file.fingerprint });
  });
});

describe('agentmesh-e2e inspect', () => {
  function session() {
    const a = ed25519KeyPair();
    const b = ed25519KeyPair();
    const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
    const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
    bob.generateSignedPreKey();
    const [otk] = bob.generateOneTimePreKeys(1);
    const bundle = bob.getPublicBundle({ otkId: otk!.keyId });
    const { channel, establishment } = SecureChannel.createSender(alice, bundle);
    return { bob, bundle, channel, establishment, otkId: otk!.keyId };
  }

  test('an envelope, binary (hex or base64) or JSON: header, nonce, sizes', async () => {
    const { channel } = session();
    const m = channel.send(utf8('twelve bytes'));
    const wire = m.serialize();
    for (const input of [toHex(wire), toBase64(wire), JSON.stringify(m.toJSON())]) {
      const r = await cli(['inspect', input]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toEqual({
        kind: 'envelope',
        bytes: wire.length,
        header: { ratchetKey: toHex(m.header.dhPublicKey), previousChainLength: 0, messageNumber: 0 },
        nonce: toHex(m.ciphertext.subarray(0, 12)),
        plaintextBytes: 12,
        tag: toHex(m.ciphertext.subarray(-16)),
      });
    }
  });

  test('an establishment, binary or JSON, from stdin or @FILE', async () => {
    const { establishment, otkId, bundle } = session();
    const expected = {
      kind: 'establishment',
      initiatorIdentityKey: toBase64(establishment.initiatorIdentityKey),
      ephemeralPublicKey: toBase64(establishment.ephemeralPublicKey),
      usedOneTimeKeyId: otkId,
      signedPreKeyId: bundle.signedPreKeyId,
      postQuantum: false,
      kemPreKeyId: null,
    };
    const bin = toHex(ChannelEstablishment.from(establishment).serialize());
    expect(JSON.parse((await cli(['inspect', bin, '--as', 'establishment'])).out)).toEqual(expected);
    expect(JSON.parse((await cli(['inspect', '-'], {}, JSON.stringify(establishment.toJSON()))).out)).toEqual(expected);
    const f = join(dir, 'est.txt');
    writeFileSync(f, `${bin}\n`);
    expect(JSON.parse((await cli(['inspect', `@${f}`])).out)).toEqual(expected);
    expect(await cli(['inspect', `@${join(dir, 'missing.txt')}`])).toMatchObject({ code: ExitCode.IO });
  });

  test('a bundle (JSON): DID, fingerprint, keys, and whether its signature and identity key check out', async () => {
    const { bundle } = session();
    const json = bundleToJSON(bundle);
    const r = JSON.parse((await cli(['inspect', JSON.stringify(json)])).out) as Record<string, unknown>;
    expect(r).toMatchObject({
      kind: 'bundle',
      identityKeyMatches: true,
      identityKeyEd: toBase64(bundle.identityKeyEd),
      signedPreKey: { keyId: bundle.signedPreKeyId, publicKey: toBase64(bundle.signedPreKey), signatureValid: true },
      oneTimePreKey: { keyId: bundle.oneTimePreKeyId, publicKey: toBase64(bundle.oneTimePreKey!) },
    });
    const forged = {
      ...json,
      signed_pre_key: { ...json.signed_pre_key, signature: json.signed_pre_key.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) },
    };
    const f = JSON.parse((await cli(['inspect', JSON.stringify(forged)])).out) as { signedPreKey: { signatureValid: boolean } };
    expect(f.signedPreKey.signatureValid).toBe(false);
  });

  test('a post-quantum bundle and establishment: the KEM pre-key (by SHA-256, signature checked) and its id', async () => {
    const { bob } = session();
    bob.generateLastResortKemPreKey();
    const bundle = bob.getPublicBundle();
    const json = bundleToJSON(bundle);
    const r = JSON.parse((await cli(['inspect', JSON.stringify(json)])).out) as Record<string, unknown>;
    expect(r.kemPreKey).toEqual({ keyId: bundle.kemPreKeyId, sha256: toHex(sha256(bundle.kemPreKey!)), signatureValid: true });
    const kem = json.kem_pre_key!;
    const forged = { ...json, kem_pre_key: { ...kem, signature: kem.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) } };
    const f = JSON.parse((await cli(['inspect', JSON.stringify(forged)])).out) as { kemPreKey: { signatureValid: boolean } };
    expect(f.kemPreKey.signatureValid).toBe(false);
    const a = ed25519KeyPair();
    const { establishment } = SecureChannel.createSender(X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey), bundle);
    for (const input of [toHex(establishment.serialize()), JSON.stringify(establishment.toJSON())]) {
      const e = JSON.parse((await cli(['inspect', input])).out) as Record<string, unknown>;
      expect(e).toMatchObject({ kind: 'establishment', postQuantum: true, kemPreKeyId: bundle.kemPreKeyId });
    }
  });

  test.each([
    ['not hex or base64!', 'MALFORMED_MESSAGE'],
    ['{"nothing": 1}', 'MALFORMED_MESSAGE'],
    ['{"ik": "AAAA", "ek": "AAAA"}', 'MALFORMED_MESSAGE'],
    ['00000028' + '00'.repeat(10), 'MALFORMED_MESSAGE'],
  ])('refuses %s: exit 1 with the error code', async (input, code) => {
    const r = await cli(['inspect', input]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err.startsWith(`agentmesh-e2e: ${code}: `)).toBe(true);
  });
});
