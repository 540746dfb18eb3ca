// Transpiles the TypeScript sources to CommonJS in dist/ (esbuild: milliseconds, so every npm script can rebuild).
// Type checking is separate: `npm run typecheck` (tsc --noEmit).

import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

function sources(dir) {
    const out = [];
    for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
            if (e.name !== 'fixtures' && e.name !== 'node_modules') out.push(...sources(p));
        } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) out.push(p);
    }
    return out;
}

rmSync('dist', { recursive: true, force: true });
await build({
    entryPoints: [...sources('functions'), ...sources('shared'), ...sources('bench'), ...sources('scripts')],
    outdir: 'dist',
    outbase: '.',
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: true,
    logLevel: 'warning',
});
chmodSync('dist/shared/cli/kvr.js', 0o755);
