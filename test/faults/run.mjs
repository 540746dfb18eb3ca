// `npm run faults -- --rounds 200`: bundles the fault-injection harness (main.ts beside this file) and runs it, from
// the repository root. Test support modules find their files (Azurite's binary, the fixtures) relative to their own
// folder, so each module keeps its own `__dirname` in the bundle.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { build } from 'esbuild';

// Under dist/ (ignored by git, ESLint and Prettier; rebuilt by every build), inside the repository so that the
// external packages resolve from node_modules.
const outfile = 'dist/faults/main.js';
await build({
    entryPoints: ['test/faults/main.ts'],
    bundle: true,
    packages: 'external',
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    logLevel: 'warning',
    outfile,
    plugins: [
        {
            name: 'own-dirname',
            setup(b) {
                b.onLoad({ filter: /\.ts$/ }, (args) => ({
                    contents: readFileSync(args.path, 'utf8').replace(
                        /\b__dirname\b/g,
                        JSON.stringify(dirname(args.path)),
                    ),
                    loader: 'ts',
                }));
            },
        },
    ],
});
const r = spawnSync(process.execPath, ['--enable-source-maps', outfile, ...process.argv.slice(2)], {
    stdio: 'inherit',
});
process.exitCode = r.status ?? 1;
