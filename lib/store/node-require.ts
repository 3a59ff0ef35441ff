/**
 * The module system's `require`, for loading an optional backend package only when a store that
 * needs it is created. This file is the CommonJS form; the ESM build (`scripts/build.mjs`) replaces
 * its output with one that gets `require` from `createRequire(import.meta.url)`, so both forms
 * resolve the backend from this package's own location.
 */

/** A `require` function: loads a package by name, synchronously. */
export type RequireFn = (id: string) => unknown;

/** This module format's `require`, or `null` where there is none (a browser bundle). */
export function nodeRequire(): RequireFn | null {
  return typeof require === 'function' ? (require as RequireFn) : null;
}
