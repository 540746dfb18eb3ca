/**
 * `kvr` loads each command's module, and the Azure SDKs behind it, only when that command runs: loading them all at
 * start took about 50 MB of RSS and a second before any command (docs/benchmark.md, "What the replay figure left out,
 * and the fix"). Checked on the built binary (dist/, built by the jest global setup), as users run it.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './support/cli';

/** The npm packages a fresh node process has loaded after requiring the built kvr module (no command run). */
function packagesLoadedAtStart(): string[] {
    const script = `
        require(${JSON.stringify(join(REPO, 'dist/shared/cli/kvr.js'))});
        const names = new Set();
        for (const file of Object.keys(require.cache)) {
            const parts = file.split('node_modules/').pop().split('/');
            if (file.includes('node_modules/')) names.add(parts[0].startsWith('@') ? parts[0] + '/' + parts[1] : parts[0]);
        }
        process.stdout.write(JSON.stringify([...names]));
    `;
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8' })) as string[];
}

describe('kvr start-up', () => {
    it('loads none of the SDKs that only some commands use', () => {
        const loaded = packagesLoadedAtStart();
        for (const sdk of [
            '@azure/data-tables',
            '@azure/identity',
            '@azure/event-hubs',
            '@azure/arm-keyvault',
            '@azure/arm-authorization',
            '@azure/keyvault-keys',
            '@azure/storage-blob',
            '@microsoft/microsoft-graph-client',
            '@azure/monitor-opentelemetry',
            'selfsigned',
        ])
            expect({ sdk, loaded: loaded.includes(sdk) }).toEqual({ sdk, loaded: false });
    });
});
