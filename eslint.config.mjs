// ESLint 9 flat config: typescript-eslint's recommended type-checked set, tuned so that the tree as written passes
// and the rules that matter for a security library stay on. `npm run lint` must report zero errors and zero
// warnings; CI runs it as part of `npm test`. Formatting is not enforced here (see CONTRIBUTING.md).
//
// Stricter in lib/ (the shipped code) than in spec/ bench/ scripts/ (tests and tools poke at hostile inputs on
// purpose: `any`, `require`, thrown strings, awaiting a sync store through the async interface).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Node's globals for the .js/.cjs/.mjs files (listed here rather than through a `globals` dependency).
const nodeGlobals = Object.fromEntries(
  [
    'require',
    'module',
    'exports',
    '__dirname',
    '__filename',
    'process',
    'console',
    'Buffer',
    'URL',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'clearImmediate',
    'TextEncoder',
    'TextDecoder',
    'globalThis',
    'structuredClone',
    'fetch',
    'AbortController',
  ].map((name) => [name, 'readonly']),
);

const unusedVars = [
  'error',
  {
    argsIgnorePattern: '^_',
    varsIgnorePattern: '^_',
    caughtErrorsIgnorePattern: '^_',
    destructuredArrayIgnorePattern: '^_',
    ignoreRestSiblings: true,
  },
];

export default tseslint.config(
  {
    ignores: ['dist/**', 'docs/**', 'coverage/**', 'node_modules/**', '.bench-results/**'],
  },

  // A stale or unneeded `eslint-disable` is an error in lib/ (off in spec/ bench/ scripts/, whose directives name
  // rules that are off there).
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },

  // Plain JavaScript (build script, Jest helpers, fixtures): the core recommended set, no types.
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: nodeGlobals },
    rules: {
      'no-unused-vars': unusedVars,
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module' },
  },

  // TypeScript everywhere: recommended + type-checked, with the project's tsconfig.
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        project: ['./tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Kept from the type-checked set and worth naming: a dropped promise loses an error or a write.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      eqeqeq: ['error', 'always'],
      '@typescript-eslint/no-unused-vars': unusedVars,
      // Rethrowing a caught `unknown` (`catch (e) { return Promise.reject(e) }`) is how errors pass through.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],

      // Off, with the reason:
      // `async` on a method with no `await` is deliberate: it turns a synchronous throw into a rejection and
      // keeps the store/transport interfaces uniformly async.
      '@typescript-eslint/require-await': 'off',
      // Style only (an assertion TypeScript already agrees with); fixing it would be a tree-wide edit.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Flags WASM exports taken off the sodium module and stored promise resolvers, neither of which uses `this`.
      '@typescript-eslint/unbound-method': 'off',
      // `String(unknown)` of a registry's error detail is intended (a non-string becomes text that matches nothing).
      '@typescript-eslint/no-base-to-string': 'off',
      // `Object.create(Class.prototype)` and Redis/SQLite row values are `any` by their libraries' types and are
      // checked on the next line; the rest of the no-unsafe-* family (call, member access, return) stays on in lib/.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },

  // lib/: the shipped code. No `any` in its code or its public types, no console outside the CLI.
  {
    files: ['lib/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-require-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['lib/cli.ts', 'lib/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },

  // Tests, benchmarks, scripts: they build hostile inputs, load modules lazily with `require`, throw strings at
  // the code under test, and await sync stores through the async interface (the same code for every store).
  {
    files: ['spec/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
      '@typescript-eslint/await-thenable': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      '@typescript-eslint/no-redundant-type-constituents': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  {
    files: ['spec/**/*.{js,cjs}', 'bench/**/*.{js,cjs}', 'scripts/**/*.{js,mjs,cjs}'],
    linterOptions: { reportUnusedDisableDirectives: 'off' },
  },
);
