/**
 * Loads Project Wycheproof vector files (spec/vectors/wycheproof, Apache-2.0) with the types of the
 * schemas we run, and counts their cases independently of the parse so that a suite can prove it
 * ran every one of them.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { fromHex } from '../../lib/crypto';

/** What Wycheproof says an implementation must do with a case. */
export type WycheproofResult = 'valid' | 'invalid' | 'acceptable';

/** The fields every Wycheproof test case has. */
export interface WycheproofCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: WycheproofResult;
}

/** `xdh_comp_schema_v1`: one X25519 computation. */
export interface XdhCompCase extends WycheproofCase {
  public: string;
  private: string;
  shared: string;
}

/** `eddsa_verify_schema_v1`: one signature to verify under the group's key. */
export interface EddsaVerifyCase extends WycheproofCase {
  msg: string;
  sig: string;
}

/** `aead_test_schema_v1`: one AEAD encryption (`ct` and `tag` are separate). */
export interface AeadCase extends WycheproofCase {
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
}

/** `hkdf_test_schema_v1`: one HKDF derivation (`size` in bytes). */
export interface HkdfCase extends WycheproofCase {
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
}

/** `mac_test_schema_v1`: one MAC (`tag` may be a truncation of the full tag). */
export interface MacCase extends WycheproofCase {
  key: string;
  msg: string;
  tag: string;
}

/** A group of cases with the group's own fields (`T` holds them). */
export type WycheproofGroup<C extends WycheproofCase, T = object> = T & { type: string; tests: C[] };

/** The group fields of the schemas above. */
export interface XdhGroupFields {
  curve: string;
}
export interface EddsaGroupFields {
  publicKey: { curve: string; keySize: number; pk: string };
}
export interface AeadGroupFields {
  ivSize: number;
  keySize: number;
  tagSize: number;
}
export interface HkdfGroupFields {
  keySize: number;
}
export interface MacGroupFields {
  keySize: number;
  tagSize: number;
}

/** A parsed vector file plus an independent count of its cases. */
export interface WycheproofFile<C extends WycheproofCase, T> {
  algorithm: string;
  schema: string;
  /** The total the file declares. */
  numberOfTests: number;
  testGroups: Array<WycheproofGroup<C, T>>;
  /** Flag descriptions (what each flag means). */
  notes: Record<string, { bugType: string; description: string }>;
  /** `"tcId"` keys counted in the raw text, without going through the JSON parse. */
  rawTcIdCount: number;
  /** Every case of every group, in file order. */
  allCases: C[];
}

/** Loads `spec/vectors/wycheproof/<name>`. */
export function loadWycheproof<C extends WycheproofCase, T>(name: string): WycheproofFile<C, T> {
  const text = readFileSync(join(__dirname, '..', 'vectors', 'wycheproof', name), 'utf8');
  const parsed = JSON.parse(text) as Omit<WycheproofFile<C, T>, 'rawTcIdCount' | 'allCases'>;
  const rawTcIdCount = (text.match(/"tcId"\s*:/g) ?? []).length;
  return { ...parsed, rawTcIdCount, allCases: parsed.testGroups.flatMap((g) => g.tests) };
}

/** Bytes of a Wycheproof hex field (empty string → empty array). */
export const hex = fromHex;

/** Runs `check` on every case of `group` and returns how many ran; failures name the tcId. */
export function runCases<C extends WycheproofCase>(cases: C[], check: (c: C) => void): number {
  let ran = 0;
  for (const c of cases) {
    try {
      check(c);
    } catch (e) {
      // Say which case failed: a loop inside one test otherwise hides it.
      if (e instanceof Error) e.message = `tcId ${c.tcId} (${c.result}, ${c.flags.join(',') || 'no flags'}: ${c.comment}): ${e.message}`;
      throw e;
    }
    ran++;
  }
  return ran;
}
