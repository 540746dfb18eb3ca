// Bundles the TypeScript sources into dist/ with esbuild (milliseconds, so every npm script can rebuild first).
// Bundling matters for speed: esbuild's unbundled CommonJS output calls every cross-module function through an
// export getter. npm packages stay external. Type checking is separate: `npm run typecheck` (tsc --noEmit).

import { chmodSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

// A folder may be absent: the deployment package leaves bench/ and scripts/*.ts out (.funcignore), and the platform's
// remote build runs this script on that package (docs/deploy-packaging.md).
const tsFiles = (dir) =>
    (existsSync(dir) ? readdirSync(dir) : [])
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
        .map((f) => join(dir, f));

const common = {
    bundle: true,
    packages: 'external',
    platform: 'node',
    // The lowest Node the package admits (package.json engines, >=20: local development); Functions runs Node 22.
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });
await Promise.all([
    // All Azure Functions registrations in one entry point (package.json "main"), so they share one composition root.
    build({
        ...common,
        stdin: {
            // Telemetry first: it must start before the functions load the instrumented SDKs (see the module).
            contents: ['shared/app/telemetryFirst.ts', ...tsFiles('functions')]
                .map((f) => `import './${f}';`)
                .join('\n'),
            resolveDir: '.',
            sourcefile: 'functions-entry.ts',
            loader: 'ts',
        },
        outfile: 'dist/functions/index.js',
    }),
    build({
        ...common,
        entryPoints: ['shared/cli/kvr.ts', ...tsFiles('bench'), ...tsFiles('scripts')],
        outdir: 'dist',
        outbase: '.',
    }),
]);
chmodSync('dist/shared/cli/kvr.js', 0o755);
