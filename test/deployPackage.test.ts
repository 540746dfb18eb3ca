/**
 * The deployment package, built and loaded the way `azd deploy` and the platform would (docs/deploy-packaging.md).
 *
 * 1. Select: the files azd zips, chosen by `.funcignore` (test/support/funcignore.ts: when the file exists azd uses it
 *    instead of its defaults, including the `node_modules` exclusion; deployment-contracts.md, "azd packaging").
 * 2. Build: for `language: js` on Flex Consumption azd asks for a remote build (Azure/azure-dev,
 *    cli/azd/pkg/project/service_target_functionapp.go), and the platform runs `npm install` (so `prepare`) and
 *    `npm run build` on the upload. This test runs those two scripts with npm in a clean folder holding only the
 *    packaged files. Choice: it does not run a real `npm install` (minutes against the registry mirror here, which
 *    also lacks some per-platform packages); the package's `node_modules` for the build is a link to this checkout's
 *    full install (what `npm install` with dev dependencies would produce from the same lockfile), and the lockfile must
 *    be in the package and agree with package.json.
 * 3. Load: `main` runs in another clean folder holding the built package and the production dependency closure only
 *    (every lockfile entry not marked `dev`, copied as hard links), so no devDependency is resolvable; it is loaded in
 *    a child process with test/support/functionsWorker/standIn.js preloaded, the stand-in for the worker's
 *    `@azure/functions-core` module, which records what the real `@azure/functions` library registers.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
    copyFileSync,
    existsSync,
    linkSync,
    lstatSync,
    mkdirSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    rmSync,
    symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { REPO } from './support/cli';
import { startAzurite, type AzuriteService } from './support/azurite';
import { EXPECTED_FUNCTIONS } from './support/expectedFunctions';
import { fixtureText } from './support/fixtures';
import { isIgnored, packageFiles, parseIgnore } from './support/funcignore';

const WORKER = join(REPO, 'test', 'support', 'functionsWorker');

interface PackageJson {
    main: string;
    scripts: Record<string, string>;
    engines?: { node?: string };
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
}
interface LockEntry {
    dev?: boolean;
    version?: string;
}

interface Registration {
    name: string;
    bindings: Record<string, Record<string, unknown>>;
    retryOptions?: Record<string, unknown>;
}
interface HarnessReport {
    loadError?: string;
    programmingModel?: string;
    registrations: Registration[];
    events: string[];
    invocation?: {
        bindingError?: string;
        inputs?: unknown[];
        result?: unknown;
        error?: string;
        logs?: { level: string; message: string }[];
    };
}

/** Copies a tree as hard links (a plain copy across file systems), leaving out nested `node_modules`. */
function linkTree(from: string, to: string, skipNodeModules: boolean): void {
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) {
        if (skipNodeModules && name === 'node_modules') continue;
        const src = join(from, name);
        const st = lstatSync(src);
        if (st.isDirectory()) linkTree(src, join(to, name), skipNodeModules);
        else if (st.isFile()) {
            try {
                linkSync(src, join(to, name));
            } catch {
                copyFileSync(src, join(to, name));
            }
        }
    }
}

const VALID_SETTINGS = {
    KV_LOGS_HUB: 'insights-logs-auditevent',
    KV_LOGS_CONSUMER_GROUP: 'kv-responder',
    KVR_PUBLIC_URL: 'https://kvr.example.net',
    KVR_SIGNING_KEY_ID: 'https://kv-kvr.vault.azure.net/keys/ack-signing',
};

function runMain(
    appRoot: string,
    env: Record<string, string>,
): { report: HarnessReport; run: SpawnSyncReturns<string> } {
    const run = spawnSync(process.execPath, ['-r', join(WORKER, 'standIn.js'), join(WORKER, 'harness.js'), appRoot], {
        cwd: appRoot,
        env: { PATH: process.env.PATH ?? '', ...env },
        encoding: 'utf8',
        timeout: 120_000,
    });
    const line = run.stdout.split('\n').find((l) => l.startsWith('KVR-HARNESS '));
    if (line === undefined) throw new Error(`the harness printed no report: ${run.stderr}\n${run.stdout}`);
    return { report: JSON.parse(line.slice('KVR-HARNESS '.length)) as HarnessReport, run };
}

describe('the deployment package, built and loaded as azd and the platform would', () => {
    let work: string;
    let pkgDir: string;
    let runDir: string;
    let files: string[];
    let builds: { script: string; run: SpawnSyncReturns<string> }[];
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as PackageJson;

    beforeAll(() => {
        work = mkdtempSync(join(tmpdir(), 'kvr-deploy-'));
        pkgDir = join(work, 'package');
        runDir = join(work, 'wwwroot');
        // 1. The upload.
        files = packageFiles(REPO);
        for (const f of files) {
            mkdirSync(dirname(join(pkgDir, f)), { recursive: true });
            copyFileSync(join(REPO, f), join(pkgDir, f));
        }
        // 2. The remote build: `npm install` runs `prepare`, then `npm run build`.
        symlinkSync(join(REPO, 'node_modules'), join(pkgDir, 'node_modules'), 'dir');
        builds = ['prepare', 'build'].map((script) => ({
            script,
            run: spawnSync('npm', ['run', script], {
                cwd: pkgDir,
                env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? work },
                encoding: 'utf8',
                timeout: 180_000,
            }),
        }));
        rmSync(join(pkgDir, 'node_modules'));
        // 3. What runs: the built package and the production dependency closure, nothing else.
        linkTree(pkgDir, runDir, false);
        const lock = JSON.parse(readFileSync(join(pkgDir, 'package-lock.json'), 'utf8')) as {
            packages: Record<string, LockEntry>;
        };
        for (const [key, entry] of Object.entries(lock.packages)) {
            if (!key.startsWith('node_modules/') || entry.dev === true) continue;
            if (existsSync(join(REPO, key))) linkTree(join(REPO, key), join(runDir, key), true);
        }
    }, 300_000);

    afterAll(() => {
        if (work !== undefined) rmSync(work, { recursive: true, force: true });
    });

    it('uploads the sources, the build script and the lockfile, and no node_modules or development files', () => {
        for (const f of ['package.json', 'package-lock.json', 'host.json', 'tsconfig.json', 'scripts/build.mjs'])
            expect(files).toContain(f);
        expect(files).toContain('functions/kvAuditIngest.ts');
        expect(files.filter((f) => f.startsWith('shared/') && f.endsWith('.ts')).length).toBeGreaterThan(50);
        const junk = files.filter(
            (f) =>
                /(^|\/)node_modules\//.test(f) ||
                /^(dist|test|bench|docs|infra|samples|coverage|\.git|\.ci|\.kvr)(\/|$)/.test(f) ||
                /\.test\.ts$/.test(f) ||
                /^scripts\/.*\.ts$/.test(f) ||
                /^local\.settings/.test(f),
        );
        expect(junk).toEqual([]);
        // Every top-level entry that git tracks is either shipped on purpose or excluded on purpose.
        const tracked = spawnSync('git', ['ls-files'], { cwd: REPO, encoding: 'utf8' }).stdout.split('\n');
        const shippedTop = new Set(files.map((f) => f.split('/')[0]));
        const topTracked = new Set(tracked.filter((f) => f.length > 0).map((f) => f.split('/')[0] as string));
        expect([...topTracked].filter((t) => shippedTop.has(t)).sort()).toEqual([
            'LICENSE', // the MIT notice travels with every copy
            'functions',
            'host.json',
            'package-lock.json',
            'package.json',
            'scripts',
            'shared',
            'tsconfig.json',
        ]);
    });

    it('ships a lockfile that matches package.json (the platform installs from it)', () => {
        const lock = JSON.parse(readFileSync(join(pkgDir, 'package-lock.json'), 'utf8')) as {
            packages: Record<string, { dependencies?: Record<string, string>; devDependencies?: unknown }>;
        };
        expect(lock.packages['']?.dependencies).toEqual(pkg.dependencies);
        expect(lock.packages['']?.devDependencies).toEqual(pkg.devDependencies);
    });

    it('builds from the packaged files alone (npm install runs prepare, then npm run build)', () => {
        for (const b of builds) {
            // The output is shown only when the script failed (npm may warn on stderr).
            const output = b.run.status === 0 ? '' : `${b.run.stdout}\n${b.run.stderr}`;
            expect({ script: b.script, status: b.run.status, output }).toEqual({
                script: b.script,
                status: 0,
                output: '',
            });
        }
        expect(existsSync(join(pkgDir, pkg.main))).toBe(true);
    });

    it('declares engines that admit the deployed runtime (Node 22) and the local one', () => {
        // Node.js 20 support on Functions ended 2026-04-30; the templates run 22 (deployment-contracts.md). The
        // bundle targets the lowest admitted version (scripts/build.mjs), so it runs on both.
        const m = /^>=\s*(\d+)(?:\.\d+){0,2}$/.exec(pkg.engines?.node ?? '');
        expect(m).not.toBeNull();
        const min = Number(m?.[1]);
        expect(min).toBeLessThanOrEqual(22);
        expect(min).toBeLessThanOrEqual(Number(process.versions.node.split('.')[0]));
        const target = /target:\s*'node(\d+)'/.exec(readFileSync(join(REPO, 'scripts/build.mjs'), 'utf8'));
        expect(Number(target?.[1])).toBe(min);
    });

    it('resolves production dependencies only where main runs', () => {
        const req = createRequire(join(runDir, pkg.main));
        for (const dep of Object.keys(pkg.dependencies)) expect(() => req.resolve(dep)).not.toThrow();
        for (const dev of ['esbuild', 'jest', 'typescript', 'eslint', 'azurite', 'prettier'])
            expect(() => req.resolve(dev)).toThrow(/Cannot find module/);
    });

    it('registers every function with the expected trigger, binding options and retry policy', () => {
        const { report } = runMain(runDir, {
            ...VALID_SETTINGS,
            KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
            KVR_STATE: 'https://acct.table.core.windows.net',
        });
        expect(report.loadError).toBeUndefined();
        expect(report.programmingModel).toBe('@azure/functions');
        const byName = new Map(report.registrations.map((r) => [r.name, r]));
        expect([...byName.keys()].sort()).toEqual(Object.keys(EXPECTED_FUNCTIONS).sort());
        for (const [name, expected] of Object.entries(EXPECTED_FUNCTIONS)) {
            const reg = byName.get(name) as Registration;
            const triggers = Object.values(reg.bindings).filter((b) => b.direction === 'in');
            expect(triggers).toHaveLength(1);
            const trigger = triggers[0] as Record<string, unknown>;
            const actual = Object.fromEntries(Object.keys(expected.trigger).map((k) => [k, trigger[k]]));
            expect({ name, trigger: actual }).toEqual({ name, trigger: expected.trigger });
            if (expected.retryOptions === undefined) expect({ name, retry: reg.retryOptions }).toEqual({ name });
            else expect({ name, retry: reg.retryOptions }).toMatchObject({ name, retry: expected.retryOptions });
        }
    });

    it('starts telemetry before the instrumented SDKs are loaded', () => {
        const sdks = [
            '@azure/storage-blob',
            '@azure/data-tables',
            '@azure/arm-keyvault',
            '@azure/keyvault-keys',
            '@microsoft/microsoft-graph-client',
            'undici',
        ];
        const { report } = runMain(runDir, {
            ...VALID_SETTINGS,
            KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
            KVR_STATE: 'https://acct.table.core.windows.net',
            APPLICATIONINSIGHTS_CONNECTION_STRING:
                'InstrumentationKey=00000000-0000-4000-8000-000000000000;IngestionEndpoint=https://127.0.0.1:9/',
            AZURE_CLIENT_ID: '00000000-0000-4000-8000-00000000000c',
            KVR_STANDIN_WATCH: ['@azure/monitor-opentelemetry', ...sdks].join(','),
        });
        expect(report.loadError).toBeUndefined();
        const started = report.events.indexOf('call useAzureMonitor');
        expect(started).toBeGreaterThanOrEqual(0);
        for (const sdk of sdks) {
            const loaded = report.events.indexOf(`load ${sdk}`);
            expect({ sdk, loaded: loaded >= 0, afterTelemetry: loaded > started }).toEqual({
                sdk,
                loaded: true,
                afterTelemetry: true,
            });
        }
    });

    describe('a string-typed batch as the host delivers it (Azurite)', () => {
        let blob: AzuriteService;
        let table: AzuriteService;
        beforeAll(async () => {
            [blob, table] = await Promise.all([startAzurite('blob'), startAzurite('table')]);
        });
        afterAll(async () => {
            await Promise.all([blob?.stop(), table?.stop()]);
        });

        it('quarantines the one non-JSON body alone and processes the others', async () => {
            const bad = fixtureText('malformed/not-json.json');
            const bodies = [fixtureText('secret-get-success.json'), bad, fixtureText('multi-record-mixed.json')];
            const { report } = runMain(runDir, {
                ...VALID_SETTINGS,
                KVR_QUARANTINE_CONNECTION_STRING: blob.connectionString,
                KVR_QUARANTINE_CONTAINER: 'kvr-quarantine',
                KVR_STATE: table.connectionString,
                // The harness builds the host's invocation request from the registered binding (see harness.js).
                KVR_HARNESS_INVOKE: JSON.stringify({
                    function: 'kvAuditIngest',
                    bodies,
                    triggerMetadata: {
                        PartitionContext: { json: JSON.stringify({ PartitionId: '3' }) },
                        SequenceNumberArray: { json: JSON.stringify([40, 41, 42]) },
                    },
                }),
            });
            expect(report.loadError).toBeUndefined();
            const inv = report.invocation;
            expect(inv?.bindingError).toBeUndefined();
            expect(inv?.error).toBeUndefined();
            const summary = (inv?.result as { summary: Record<string, number> }).summary;
            // secret-get-success: 1 record; multi-record-mixed: 4 records, 1 of another resource type (skipped).
            expect(summary).toMatchObject({ bodies: 3, records: 5, events: 4, skipped: 1, rejected: 1 });
            const rejected = (inv?.logs ?? []).filter((l) => l.message.includes('kvr.rejected'));
            expect(rejected).toHaveLength(1);
            expect(rejected[0]?.message).toContain('partition 3 sequence 41');

            const container = BlobServiceClient.fromConnectionString(blob.connectionString).getContainerClient(
                'kvr-quarantine',
            );
            // One JSON Lines blob per batch (docs/limits.md): one line, the bad body kept whole.
            const kept: string[] = [];
            for await (const b of container.listBlobsFlat())
                kept.push((await container.getBlobClient(b.name).downloadToBuffer()).toString('utf8'));
            expect(kept).toHaveLength(1);
            const lines = (kept[0] as string).split('\n').filter((l) => l.length > 0);
            expect(lines.map((l) => (JSON.parse(l) as { raw: unknown }).raw)).toEqual([bad]);
        }, 120_000);
    });
});

describe('.funcignore matching (gitignore rules)', () => {
    const rules = parseIgnore(
        ['# comment', '/dist/', '*.test.ts', 'scripts/*.ts', 'logs/', '!keep.log', '*.log', '!important.log'].join(
            '\n',
        ),
    );
    it.each([
        ['dist', true, true],
        ['shared/dist', true, false],
        ['shared/a.test.ts', false, true],
        ['scripts/generate.ts', false, true],
        ['scripts/build.mjs', false, false],
        ['scripts/sub/x.ts', false, false],
        ['a/logs', true, true],
        ['a/logs', false, false],
        ['x.log', false, true],
        ['important.log', false, false],
        ['shared/app.ts', false, false],
    ])('%s (dir %s) ignored: %s', (path, isDir, ignored) => {
        expect(isIgnored(rules, path, isDir)).toBe(ignored);
    });

    it('matches ** across directories', () => {
        const r = parseIgnore('a/**/b\n**/c.txt\nd/**');
        expect(isIgnored(r, 'a/b', false)).toBe(true);
        expect(isIgnored(r, 'a/x/y/b', false)).toBe(true);
        expect(isIgnored(r, 'q/c.txt', false)).toBe(true);
        expect(isIgnored(r, 'd/e/f', false)).toBe(true);
        expect(isIgnored(r, 'd', true)).toBe(false);
    });
});
