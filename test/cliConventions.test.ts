// The conventions of the kvr command line: help for every command, --version, the exit status table, errors that
// name the option and the fix, and a replay that survives a damaged input.
import { execFile } from 'node:child_process';
import {
    chmodSync,
    mkdirSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    rmSync,
    symlinkSync,
    writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { COMMAND_HELP, EXIT_CODES } from '../shared/cli/help';
import { decisionsOf, REPO, runKvr, runKvrBinary } from './support/cli';
import { fixtureText } from './support/fixtures';

const dirs: string[] = [];
function tmp(): string {
    const dir = mkdtempSync(join(tmpdir(), 'kvr-conv-'));
    dirs.push(dir);
    return dir;
}
afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** The command names listed under "Commands:" by the global help. */
function listedCommands(globalHelp: string): string[] {
    const section = globalHelp.split('Commands:\n')[1]?.split('\n\n')[0] ?? '';
    return section
        .split('\n')
        .map((l) => /^ {2}(\S+) {2}/.exec(l)?.[1])
        .filter((c): c is string => c !== undefined);
}

describe('kvr help', () => {
    it.each([['--help'], ['help'], ['-h']])(
        '`kvr %s` prints the global help with the command list (exit 0)',
        async (arg) => {
            const run = await runKvr(arg);
            expect(run.code).toBe(0);
            expect(run.stderr).toBe('');
            expect(run.stdout).toMatch(/^Usage: kvr <command>/);
            expect(listedCommands(run.stdout)).toEqual(
                expect.arrayContaining(['replay', 'cmk-report', 'posture', 'serve', 'consume', 'send']),
            );
        },
    );

    it('has help for every command the global help lists, with `--help`, `-h` and `kvr help <command>`', async () => {
        const commands = listedCommands((await runKvr('help')).stdout);
        expect(commands.length).toBeGreaterThanOrEqual(6);
        for (const command of commands) {
            const viaFlag = await runKvr(command, '--help');
            const viaShort = await runKvr(command, 'ignored-positional', '-h');
            const viaHelp = await runKvr('help', command);
            for (const run of [viaFlag, viaShort, viaHelp]) {
                expect({ command, code: run.code, stderr: run.stderr }).toEqual({ command, code: 0, stderr: '' });
                expect(run.stdout).toBe(viaFlag.stdout);
            }
            const text = viaFlag.stdout;
            expect(text).toMatch(new RegExp(`^Usage:\\n {2}kvr ${command}\\b`));
            expect(text).toContain('Options:\n');
            expect(text).toContain('Exit status:\n');
            // Every example runs the command it documents, in the spelling the docs use.
            const examples = text.split('Examples (from a clone, after npm ci):\n')[1]?.split('\n\n')[0] ?? '';
            const lines = examples.split('\n').filter((l) => l.trim().length > 0);
            expect(lines.length).toBeGreaterThan(0);
            for (const l of lines) expect(l).toMatch(new RegExp(`^ {2}npx kvr ${command}\\b`));
        }
    });

    it("names the command's help after an unknown option (exit 2)", async () => {
        for (const command of Object.keys(COMMAND_HELP)) {
            const bogus = await runKvr(command, '--no-such-option');
            expect({ command, code: bogus.code }).toEqual({ command, code: 2 });
            expect(bogus.stderr).toBe(`kvr: unknown option '--no-such-option'; see 'kvr ${command} --help'\n`);
        }
    });

    it.each([
        [['replay', 'x', '--config'], "kvr: option '--config' needs a value; see 'kvr replay --help'\n"],
        [['cmk-report', '--json=yes'], "kvr: option '--json' takes no value; see 'kvr cmk-report --help'\n"],
        [
            ['posture', 'extra'],
            "kvr: unexpected argument 'extra': this command takes options only; see 'kvr posture --help'\n",
        ],
        [['--frobnicate'], "kvr: unknown option '--frobnicate' before the command: 'kvr help' lists the commands\n"],
    ])('%j is a usage error that names the option (exit 2)', async (argv, message) => {
        const run = await runKvr(...argv);
        expect(run).toEqual({ code: 2, stdout: '', stderr: message });
    });

    it('`kvr help <unknown>` is a usage error', async () => {
        const run = await runKvr('help', 'frobnicate');
        expect(run.code).toBe(2);
        expect(run.stderr).toBe("kvr: no command 'frobnicate': 'kvr help' lists the commands\n");
    });

    it("`kvr --version` prints package.json's version", async () => {
        const run = await runKvr('--version');
        expect(run).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
        const bin = await runKvrBinary(['--version']);
        expect(bin).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    });
});

/** A loopback port nothing listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            const port = typeof address === 'object' && address !== null ? address.port : 0;
            server.close(() => resolve(port));
        });
    });
}

// Azurite's published well-known development key (not a secret).
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

describe('kvr --state values', () => {
    it.each([
        [['replay', 'x', '--state', 'foo'], 'replay'],
        [['replay', 'x', '--state', 'http://127.0.0.1:1'], 'replay'],
        [['replay', 'x', '--state', 'https://'], 'replay'],
        [['replay', 'x', '--state', 'AccountName=x'], 'replay'],
        [['replay', 'x', '--state', 'UseDevelopmentStorage=true', '--state-table', 'no_such-table'], 'replay'],
        [['cmk-report', '--state', 'foo'], 'cmk-report'],
    ])('%j is a usage error naming --state and the fix (exit 2, one line, no output)', async (argv, command) => {
        const run = await runKvr(...argv);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        expect(run.stderr).toMatch(/^kvr: --state(-table)?: /);
        expect(run.stderr).toMatch(new RegExp(`; see 'kvr ${command} --help'\\n$`));
        expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(run.stderr).not.toMatch(/TypeError|\n\s+at /);
    });

    it('never echoes a connection string (it holds the account key)', async () => {
        const run = await runKvr('replay', 'x', '--state', `AccountName=x;AccountKey=${DEV_KEY}`);
        expect(run.code).toBe(2);
        expect(run.stderr).not.toContain(DEV_KEY);
    });

    it('an unreachable state endpoint is a one-line runtime failure (exit 1, no stack trace)', async () => {
        const port = await closedPort();
        const state =
            `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${DEV_KEY};` +
            `TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1`;
        const dir = tmp();
        writeFileSync(join(dir, 'a.json'), fixtureText('secret-purge-success.json'));
        const run = await runKvr('replay', join(dir, 'a.json'), '--state', state);
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(/^kvr: .*ECONNREFUSED/);
        expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(run.stderr).not.toContain(DEV_KEY);
    });
});

describe('kvr replay of a damaged input', () => {
    /** A folder with a truncated .gz between two good captures. */
    function damagedFolder(): { dir: string; truncated: string; compressedSize: number } {
        const dir = tmp();
        const gz = gzipSync(fixtureText('PT1H.json'));
        const truncated = join(dir, 'b-PT1H.json.gz');
        writeFileSync(join(dir, 'a.json'), fixtureText('secret-purge-success.json'));
        writeFileSync(truncated, gz.subarray(0, Math.floor(gz.length * 0.6)));
        writeFileSync(join(dir, 'c.json.gz'), gzipSync(fixtureText('vault-patch-access-policy-added.json')));
        return { dir, truncated, compressedSize: Math.floor(gz.length * 0.6) };
    }

    it('reports a truncated .gz as rejected with its position, processes the other files, prints the summary, exits 3', async () => {
        const { dir, truncated, compressedSize } = damagedFolder();
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(3);
        const decisions = decisionsOf(run.stdout);
        const rejected = decisions.filter((d) => d.type === 'rejected');
        expect(rejected).toHaveLength(1);
        expect(String(rejected[0]?.source)).toMatch(
            new RegExp(`^${truncated.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+$`),
        );
        expect(String(rejected[0]?.reason)).toMatch(
            new RegExp(`truncated file.*after ${compressedSize} byte\\(s\\) of the file, at decompressed line \\d+`),
        );
        // Both good files were processed (the third one comes after the damaged one).
        const rules = decisions.filter((d) => d.type === 'finding').map((d) => d.rule);
        expect(rules).toEqual(expect.arrayContaining(['sensitive-operation', 'access-policy-granted']));
        expect(run.stderr).toMatch(/^kvr replay: 3 files, /);
        expect(run.stderr).toMatch(/\n {2}rejected 1 /);
        expect(run.stderr).toMatch(/\nkvr replay: processed with problems: 1 input\(s\) rejected/);
        expect(run.stderr).toContain(`\n  damaged file ${truncated}:`);
    });

    it('`kvr cmk-report` still prints its report over a damaged input, and exits 3', async () => {
        const { dir } = damagedFolder();
        const run = await runKvr('cmk-report', '--json', dir);
        expect(run.code).toBe(3);
        expect(JSON.parse(run.stdout)).toEqual(expect.objectContaining({ rows: expect.any(Array) }));
        expect(run.stderr).toMatch(/\nkvr cmk-report: processed with problems: 1 input\(s\) rejected/);
    });

    it('does the same in the built binary', async () => {
        const { dir } = damagedFolder();
        const run = await runKvrBinary(['replay', dir]);
        expect(run.code).toBe(3);
        expect(run.stderr).toMatch(/^kvr replay: 3 files, /);
        expect(run.stderr).not.toMatch(/\n\s+at /);
    });

    it('reports a corrupt .gz (bad compressed data) as rejected and goes on', async () => {
        const dir = tmp();
        const gz = Buffer.from(gzipSync(fixtureText('PT1H.json')));
        for (let i = 20; i < gz.length - 8; i++) gz[i] = 0xff;
        writeFileSync(join(dir, 'a.json.gz'), gz);
        writeFileSync(join(dir, 'b.json'), fixtureText('secret-purge-success.json'));
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(3);
        const rejected = decisionsOf(run.stdout).filter((d) => d.type === 'rejected');
        expect(rejected).toEqual([expect.objectContaining({ reason: expect.stringMatching(/^damaged input: /) })]);
        expect(decisionsOf(run.stdout).filter((d) => d.type === 'finding')).toHaveLength(1);
    });

    const asRoot = process.getuid?.() === 0;
    (asRoot ? it.skip : it)('reports an unreadable file inside a folder as rejected and goes on', async () => {
        const dir = tmp();
        writeFileSync(join(dir, 'a.json'), fixtureText('secret-purge-success.json'));
        writeFileSync(join(dir, 'b.json'), fixtureText('secret-purge-success.json'));
        chmodSync(join(dir, 'a.json'), 0o000);
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(3);
        expect(decisionsOf(run.stdout).filter((d) => d.type === 'rejected')).toEqual([
            expect.objectContaining({
                source: join(dir, 'a.json'),
                reason: expect.stringMatching(/permission denied/),
            }),
        ]);
    });

    it('reports an unreadable folder inside a replayed folder as rejected and goes on', async () => {
        const dir = tmp();
        writeFileSync(join(dir, 'b.json'), fixtureText('secret-purge-success.json'));
        // A dangling symbolic link to a folder that is not there: stat fails inside the walk.
        mkdirSync(join(dir, 'gone'));
        rmSync(join(dir, 'gone'), { recursive: true });
        symlinkSync(join(dir, 'gone'), join(dir, 'a-link.json'));
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(3);
        expect(decisionsOf(run.stdout).filter((d) => d.type === 'rejected')).toEqual([
            expect.objectContaining({
                source: join(dir, 'a-link.json'),
                reason: 'damaged input: cannot read the file: no such file or directory',
            }),
        ]);
        expect(decisionsOf(run.stdout).filter((d) => d.type === 'finding')).toHaveLength(1);
    });

    it('still fails before any output for a path named on the command line that does not exist (exit 2)', async () => {
        const run = await runKvr('replay', join(tmp(), 'missing.json'));
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
    });
});

describe('docs/cli.md', () => {
    const doc = readFileSync(join(REPO, 'docs', 'cli.md'), 'utf8');

    it('has the exit status table of the CLI', () => {
        for (const [code, meaning] of EXIT_CODES) expect(doc).toContain(`| ${code} | ${meaning} |`);
    });

    it("shows each command's current help", async () => {
        for (const command of Object.keys(COMMAND_HELP)) {
            const help = (await runKvr(command, '--help')).stdout.split('\n\nExit status:')[0] ?? '';
            expect({ command, inDoc: doc.includes(`$ npx kvr ${command} --help\n${help}\n\`\`\``) }).toEqual({
                command,
                inDoc: true,
            });
        }
    });

    it('the docs pages spell a kvr command line one way, `npx kvr`', () => {
        const docs = join(REPO, 'docs');
        for (const page of readdirSync(docs).filter((f) => f.endsWith('.md'))) {
            const text = readFileSync(join(docs, page), 'utf8');
            expect({
                page,
                other: text.match(/npm run (--silent |-s )?kvr\b|node dist\/shared\/cli\/kvr\.js \w/g),
            }).toEqual({
                page,
                other: null,
            });
        }
    });

    it('documents every command, in the one spelling that works from a clone', () => {
        for (const command of Object.keys(COMMAND_HELP)) expect(doc).toContain(`npx kvr ${command}`);
        expect(doc).not.toMatch(/npm run (--silent |-s )?kvr/);
    });
});

describe('npx kvr from the repository root', () => {
    it("runs the package's own bin: `npx kvr --version` (the spelling the docs use)", async () => {
        const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
            execFile(
                'npx',
                ['kvr', '--version'],
                { cwd: REPO, env: { ...process.env, npm_config_update_notifier: 'false' } },
                (err, stdout, stderr) =>
                    resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
            );
        });
        expect(run.stdout).toBe(`${VERSION}\n`);
        expect(run.code).toBe(0);
    }, 120_000);
});
