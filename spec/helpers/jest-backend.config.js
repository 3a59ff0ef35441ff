/**
 * The project's Jest configuration plus spec/helpers/backend-setup.ts, for running a suite on one
 * backend of X25519 and Ed25519:
 *
 *   AGENTMESH_BACKEND=native npx jest -c spec/helpers/jest-backend.config.js spec/crypto spec/ratchet ...
 *   AGENTMESH_BACKEND=wasm   npx jest -c spec/helpers/jest-backend.config.js
 *
 * (Without AGENTMESH_BACKEND the setup does nothing: ready() picks auto, native where installed.)
 * @type {import('jest').Config}
 */
const path = require('path');
const base = require('../../jest.config.js');

module.exports = {
  ...base,
  rootDir: path.join(__dirname, '..', '..'),
  setupFilesAfterEnv: [...(base.setupFilesAfterEnv ?? []), '<rootDir>/spec/helpers/backend-setup.ts'],
};
