/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    transform: {
        '^.+\\.ts$': [
            '@swc/jest',
            {
                jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
                module: { type: 'commonjs' },
                sourceMaps: 'inline',
            },
        ],
    },
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    globalSetup: '<rootDir>/test/support/globalSetup.js',
    testTimeout: 60000,
    reporters: ['default', '<rootDir>/test/support/plainSummaryReporter.js'],
};
