/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    transform: { '^.+\\.ts$': '<rootDir>/test/support/esbuildTransform.js' },
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    globalSetup: '<rootDir>/test/support/globalSetup.js',
    testTimeout: 60000,
    // Some emulator and HTTPS-fake sockets (the doctor test's Azurite queue) outlive their suites and kept jest alive
    // after a finished run, which would hang CI. Results are complete when jest forces the exit.
    forceExit: true,
    reporters: ['default', '<rootDir>/test/support/plainSummaryReporter.js'],
};
