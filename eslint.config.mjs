// Lint: typescript-eslint (type-aware) plus the pure-core boundary. Formatting is Prettier's job.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

const coreBoundary = {
    files: ['shared/core/**/*.ts'],
    rules: {
        'no-restricted-imports': [
            'error',
            {
                patterns: [
                    {
                        group: [
                            '@azure/*',
                            '@microsoft/*',
                            'node:*',
                            'fs',
                            'http',
                            'https',
                            'zlib',
                            '**/adapters/**',
                            '**/app/**',
                            '**/config/**',
                        ],
                        message: 'The pure core imports no SDK, I/O, adapter or configuration: pass values in.',
                    },
                ],
            },
        ],
        'no-restricted-globals': [
            'error',
            { name: 'process', message: 'The pure core reads no environment: pass settings in.' },
            { name: 'console', message: 'The pure core does not log: return values.' },
            { name: 'setTimeout', message: 'The pure core has no timers.' },
            { name: 'fetch', message: 'The pure core does no I/O.' },
        ],
        'no-restricted-properties': [
            'error',
            { object: 'Date', property: 'now', message: 'The pure core has no clock: time comes from events.' },
            { object: 'Math', property: 'random', message: 'The pure core is deterministic.' },
        ],
    },
};

export default tseslint.config(
    { ignores: ['dist/', 'coverage/', 'node_modules/', 'samples/', 'test/fixtures/'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
        rules: {
            eqeqeq: 'error',
            'no-console': 'error',
            '@typescript-eslint/consistent-type-imports': 'error',
            '@typescript-eslint/switch-exhaustiveness-check': 'error',
            '@typescript-eslint/return-await': ['error', 'in-try-catch'],
            '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
        },
    },
    coreBoundary,
    {
        files: ['shared/cli/**', 'bench/**', 'scripts/**'],
        rules: { 'no-console': 'off' },
    },
    {
        files: ['**/*.js', '**/*.mjs'],
        extends: [tseslint.configs.disableTypeChecked],
        languageOptions: {
            globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly' },
        },
        rules: { '@typescript-eslint/no-require-imports': 'off' },
    },
    {
        files: ['test/**/*.ts'],
        rules: {
            '@typescript-eslint/no-unsafe-assignment': 'off',
            '@typescript-eslint/no-unsafe-member-access': 'off',
            '@typescript-eslint/no-unsafe-argument': 'off',
            '@typescript-eslint/no-unsafe-call': 'off',
            '@typescript-eslint/no-unsafe-return': 'off',
        },
    },
    prettier,
);
