/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // The package's own name resolves to this checkout's sources (examples and README blocks import it).
  moduleNameMapper: {
    '^agentmesh-e2e$': '<rootDir>/lib/index.ts',
    '^agentmesh-e2e/(sqlite|redis)$': '<rootDir>/lib/$1.ts',
    '^agentmesh-e2e/(mesh|server)$': '<rootDir>/lib/$1/index.ts',
  },
  // Starts a redis-server for the run when REDIS_URL is unset and one is on PATH.
  globalSetup: '<rootDir>/spec/helpers/global-setup.js',
  globalTeardown: '<rootDir>/spec/helpers/global-teardown.js',
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/spec/helpers/summary-reporter.js'],
};
