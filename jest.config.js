/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    transform: { '^.+\\.ts$': '<rootDir>/test/support/esbuildTransform.js' },
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    globalSetup: '<rootDir>/test/support/globalSetup.js',
    testTimeout: 60000,
    reporters: ['default', '<rootDir>/test/support/plainSummaryReporter.js'],
};
