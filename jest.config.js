/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    transform: { '^.+\\.ts$': '<rootDir>/test/support/esbuildTransform.js' },
    // Relative imports written with `.js` (TypeScript's Node16 resolution asks for it in dynamic imports) are the `.ts`
    // files beside them.
    moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    globalSetup: '<rootDir>/test/support/globalSetup.js',
    testTimeout: 60000,
    reporters: ['default', '<rootDir>/test/support/plainSummaryReporter.js'],
};
