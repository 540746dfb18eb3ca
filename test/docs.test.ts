// The docs say what is true: every command the README and docs/ show that can run offline is run here (exit status
// and a key line), every relative link resolves to a file and heading, and the statements that drifted before (rule
// counts, settings table, Teams template, posture switches, the schema generator) are checked against the code.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { SettingNames } from '../shared/config/settingNames';
import { ruleIds, timerChecks } from '../shared/core/rules';
import { decisionsOf, REPO, runKvr } from './support/cli';
import { tempDir } from './support/tempDirs';

const read = (path: string): string => readFileSync(join(REPO, path), 'utf8');
const PAGES = [
    'README.md',
    ...readdirSync(join(REPO, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
];

/** A page split into its prose lines and its code block lines (``` or ~~~ fences). */
function split(text: string): { prose: string[]; code: string[] } {
    const prose: string[] = [];
    const code: string[] = [];
    let fence: string | undefined;
    for (const line of text.split('\n')) {
        const m = /^\s*(```+|~~~+)/.exec(line);
        if (m !== null && (fence === undefined || m[1]?.startsWith(fence) === true)) {
            fence = fence === undefined ? m[1] : undefined;
            continue;
        }
        (fence === undefined ? prose : code).push(line);
    }
    return { prose, code };
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, `-1`, `-2` ... for repeats. */
function anchorsOf(text: string): Set<string> {
    const out = new Set<string>();
    const seen = new Map<string, number>();
    for (const line of split(text).prose) {
        const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
        if (m === null) continue;
        const plain = (m[1] as string).replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*_]/g, '');
        const base = plain
            .toLowerCase()
            .replace(/[^\p{L}\p{N}\s-]/gu, '')
            .replace(/\s/g, '-');
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        out.add(n === 0 ? base : `${base}-${n}`);
    }
    return out;
}

/** The link targets of a page (Markdown links and images), outside code blocks and code spans. */
function linksOf(text: string): string[] {
    const prose = split(text)
        .prose.join('\n')
        .replace(/(`+)[\s\S]*?\1/g, '');
    return [...prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)].map(
        (m) => m[1] as string,
    );
}

describe('links in README.md and docs/*.md', () => {
    it.each(PAGES.map((p) => [p]))(
        '%s: every relative link resolves to a file, and its #anchor to a heading',
        (page) => {
            const broken: string[] = [];
            for (const href of linksOf(read(page))) {
                if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // https:, mailto: ...
                const [path = '', anchor] = href.split('#');
                const target = path === '' ? join(REPO, page) : resolve(dirname(join(REPO, page)), decodeURI(path));
                if (!existsSync(target)) {
                    broken.push(`${href}: no such file ${relative(REPO, target)}`);
                    continue;
                }
                if (anchor !== undefined && anchor !== '') {
                    if (!target.endsWith('.md')) broken.push(`${href}: an anchor into a file that is not Markdown`);
                    else if (!anchorsOf(readFileSync(target, 'utf8')).has(anchor))
                        broken.push(`${href}: no heading #${anchor} in ${relative(REPO, target)}`);
                }
            }
            expect(broken).toEqual([]);
        },
    );

    it('docs/README.md lists every docs page', () => {
        const listed = new Set(linksOf(read('docs/README.md')).map((h) => h.split('#')[0]));
        const missing = PAGES.filter((p) => p.startsWith('docs/') && p !== 'docs/README.md').filter(
            (p) => !listed.has(p.slice('docs/'.length)),
        );
        expect(missing).toEqual([]);
    });

    it('the checker finds a broken file link and a broken anchor', () => {
        expect(
            anchorsOf('# A `kvr replay` page\n## Deploy, roll out, operate\n## Deploy, roll out, operate\n'),
        ).toEqual(new Set(['a-kvr-replay-page', 'deploy-roll-out-operate', 'deploy-roll-out-operate-1']));
        expect(linksOf('[a](x.md#y) `[b](z.md)`\n\n```\n[c](w.md)\n```\n')).toEqual(['x.md#y']);
    });
});

// ---------------------------------------------------------------------------------------------------------------
// Commands

/** How a documented command must end; `offline: false` names why it is not run here. */
type Expectation =
    | { readonly code: number; readonly stdout?: RegExp; readonly stderr?: RegExp; readonly file?: string }
    | { readonly offline: false; readonly why: string };

const VERSION = (JSON.parse(read('package.json')) as { version: string }).version;
const USAGE = (command: string): Expectation => ({
    code: 0,
    stdout: new RegExp(`^Usage:\\n {2}kvr ${command}`),
});

/** Every runnable `npx kvr ...` line of the docs (no `<placeholder>`, no `[option]` synopsis), and how it ends. */
const EXPECTED: Record<string, Expectation> = {
    'npx kvr --version': { code: 0, stdout: new RegExp(`^${VERSION.replace(/\./g, '\\.')}\\n$`) },
    'npx kvr help': { code: 0, stdout: /^Usage: kvr <command>[\s\S]*\n {2}replay {2}[\s\S]*\n {2}doctor {2}/ },
    'npx kvr --help': { code: 0, stdout: /^Usage: kvr <command>[\s\S]*\n {2}replay {2}[\s\S]*\n {2}doctor {2}/ },
    // The README names the command in prose; run bare, it says what it needs.
    'npx kvr replay': { code: 2, stderr: /replay needs at least one file or directory; see 'kvr replay --help'/ },
    'npx kvr help replay': USAGE('replay'),
    'npx kvr replay --help': USAGE('replay'),
    'npx kvr serve --help': USAGE('serve'),
    'npx kvr send --help': USAGE('send'),
    'npx kvr posture --help': USAGE('posture'),
    'npx kvr doctor --help': USAGE('doctor'),
    'npx kvr consume --help': USAGE('consume'),
    'npx kvr cmk-report --help': USAGE('cmk-report'),
    'npx kvr replay samples/sample-day.jsonl.gz': {
        code: 0,
        stdout: /"type":"finding","rule":"firewall-opened"/,
        stderr: /processed \d+ Key Vault audit events[\s\S]*remediation actions: planned \d+/,
    },
    'npx kvr replay samples/sample-day.jsonl.gz --config samples/demo-config.json --decisions out.jsonl': {
        code: 0,
        stderr: /decision log: out\.jsonl/,
        file: 'out.jsonl',
    },
    'npx kvr replay samples/sample-day.jsonl.gz --vaults samples/vaults.json --config samples/enforce-config.json': {
        code: 0,
        stdout: /"type":"vault-state"/,
        stderr: /remediation actions: applied \d+/,
    },
    // The README: "prints the findings and one `rejected` line per malformed input (and exits 3 ...)".
    'npx kvr replay test/fixtures/keyvault-audit': {
        code: 3,
        stdout: /"type":"rejected"[\s\S]*"type":"finding"|"type":"finding"[\s\S]*"type":"rejected"/,
    },
    'npx kvr posture --vaults samples/vaults.json --keys samples/keys.json --config samples/posture-config.json': {
        code: 0,
        stderr: /posture: 3 vault\(s\), 6 key\(s\) read; 7 finding\(s\)/,
    },
    'npx kvr cmk-report samples/sample-day.jsonl.gz': {
        code: 0,
        stdout: /^STATUS +VAULT +KEY +VERSION +SERVICE[\s\S]*\nin use +kv-cmk-prod +cmk-disks /,
    },
    'npx kvr cmk-report --json samples/sample-day.jsonl.gz': {
        code: 0,
        stdout: /^\{\n {2}"asOf": "[^"]+",\n {2}"keys": \d+,\n {2}"rows": \[/,
    },
    'npx kvr doctor': { offline: false, why: 'checks a deployed installation in Azure' },
    'npx kvr doctor --json --send-test-notice': { offline: false, why: 'checks a deployed installation in Azure' },
    'npx kvr consume': { offline: false, why: 'reads an event hub (test/consumeSend.test.ts runs it against fakes)' },
    'npx kvr consume --from-start --max-batch-size 100': { offline: false, why: 'reads an event hub' },
    'npx kvr send samples/sample-day.jsonl.gz': { offline: false, why: 'publishes to an event hub' },
    'npx kvr send --synthetic 1000 --rate 200': { offline: false, why: 'publishes to an event hub' },
    'npx kvr serve --port 0': { offline: false, why: 'serves until Ctrl-C (test/serve.test.ts runs it)' },
    'npx kvr serve --replay samples/sample-day.jsonl.gz --config samples/demo-config.json --possession-only-links': {
        offline: false,
        why: 'serves until Ctrl-C: `npm start` (test/serve.test.ts and test/sample.test.ts run it)',
    },
};

/** `npx kvr ...` command lines of a page: code spans and code block lines (`$ ` prompts taken off). */
function commandsOf(text: string): string[] {
    const out: string[] = [];
    const take = (line: string): void => {
        const cmd = line
            .trim()
            .replace(/^\$ /, '')
            .replace(/\s+#.*$/, '')
            .trim();
        if (!cmd.startsWith('npx kvr ') || /[<[]|\.\.\./.test(cmd)) return;
        out.push(cmd);
    };
    const { prose, code } = split(text);
    for (const line of code) take(line);
    for (const m of prose.join('\n').matchAll(/(`+)([\s\S]*?)\1/g)) take((m[2] as string).replace(/\s+/g, ' '));
    return out;
}

const documented = [...new Set(PAGES.flatMap((p) => commandsOf(read(p))))].sort();

/** Runs the built bin (what `npx kvr` runs from a clone) in `cwd`. */
function kvr(argv: readonly string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((done) => {
        execFile(
            process.execPath,
            [join(REPO, 'dist/shared/cli/kvr.js'), ...argv],
            { cwd, maxBuffer: 256 << 20 },
            (err, stdout, stderr) =>
                done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }),
        );
    });
}

describe('every offline command the docs show', () => {
    it('finds the commands, and knows how each one ends', () => {
        expect(documented.length).toBeGreaterThan(10);
        expect(documented.filter((c) => EXPECTED[c] === undefined)).toEqual([]);
        // No expectation for a command the docs no longer show.
        expect(Object.keys(EXPECTED).filter((c) => !documented.includes(c))).toEqual([]);
    });

    const runnable = Object.entries(EXPECTED).filter(
        (e): e is [string, Extract<Expectation, { code: number }>] => 'code' in e[1],
    );
    it.each(runnable)(
        '%s',
        async (command, want) => {
            // A scratch directory that sees the repository's samples and fixtures, for the files a command writes.
            const cwd = tempDir('kvr-docs-');
            for (const d of ['samples', 'test']) symlinkSync(join(REPO, d), join(cwd, d));
            const argv = command.slice('npx kvr '.length).split(/\s+/);
            // Help and version output does not touch files: in process, as the CLI tests run it (quicker on a busy machine).
            const help = argv.includes('--help') || argv.includes('--version') || argv[0] === 'help';
            const run = help ? await runKvr(...argv) : await kvr(argv, cwd);
            expect({ command, code: run.code, stderr: run.code === want.code ? '' : run.stderr }).toEqual({
                command,
                code: want.code,
                stderr: '',
            });
            if (want.stdout !== undefined) expect(run.stdout).toMatch(want.stdout);
            if (want.stderr !== undefined) expect(run.stderr).toMatch(want.stderr);
            if (want.file !== undefined) {
                const written = decisionsOf(readFileSync(join(cwd, want.file), 'utf8'));
                expect(written.some((d) => d.type === 'finding')).toBe(true);
            }
        },
        120_000,
    );
});

// ---------------------------------------------------------------------------------------------------------------
// Statements

const NUMBERS = [
    'zero',
    'one',
    'two',
    'three',
    'four',
    'five',
    'six',
    'seven',
    'eight',
    'nine',
    'ten',
    'eleven',
    'twelve',
    'thirteen',
    'fourteen',
    'fifteen',
    'sixteen',
    'seventeen',
    'eighteen',
    'nineteen',
    'twenty',
    'twenty-one',
    'twenty-two',
    'twenty-three',
    'twenty-four',
    'twenty-five',
];

describe('statements the docs make', () => {
    it('rule counts: the README and docs/detections.md count the rules and timer checks there are', () => {
        expect(read('README.md')).toContain(
            `${ruleIds.length}\ndetection rules with durable state and ${timerChecks.length} timer checks`,
        );
        const detections = read('docs/detections.md');
        const [, rules, timers] = /^(\S+) detection rules and (\S+) timer checks/m.exec(detections) ?? [];
        expect([rules?.toLowerCase(), timers]).toEqual([NUMBERS[ruleIds.length], NUMBERS[timerChecks.length]]);
        const rows = [...detections.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
        expect([...rows].sort()).toEqual([...ruleIds].sort());
    });

    it('the app settings table names every setting the app reads (KVR_STATE and KVR_STATE_TABLE included)', () => {
        const table = read('docs/configuration.md').split('## App settings')[1] ?? '';
        const missing = Object.values(SettingNames).filter((name) => !table.includes(`\`${name}`));
        expect(missing).toEqual([]);
    });

    it('the README, docs and infra/README.md name one Teams Workflows template, the one the contracts name', () => {
        const template = 'Post to a channel when a webhook request is received';
        const texts = ['docs/alerting.md', 'infra/README.md'].map((p) => read(p).replace(/\s+/g, ' '));
        for (const t of texts) expect(t).toContain(template);
        for (const t of texts) expect(t).not.toMatch(/When a Teams webhook request is received/i);
    });

    it('docs/cmk-posture.md: rules.<check id> is accepted and honoured', async () => {
        expect(read('docs/cmk-posture.md').replace(/\s+/g, ' ')).toContain('`rules.<check id>.enabled`');
        const dir = tempDir('kvr-docs-');
        const config = join(dir, 'posture.json');
        const posture = JSON.parse(read('samples/posture-config.json')) as Record<string, unknown>;
        const args = [
            'posture',
            '--vaults',
            join(REPO, 'samples/vaults.json'),
            '--keys',
            join(REPO, 'samples/keys.json'),
        ];
        writeFileSync(
            config,
            JSON.stringify({
                ...posture,
                rules: { 'cmk-weak-key': { enabled: false }, 'cmk-no-expiry': { severity: 'low' } },
            }),
        );
        const run = await runKvr(...args, '--config', config);
        expect(run.code).toBe(0);
        const findings = decisionsOf(run.stdout).filter((d) => d.type === 'finding');
        expect(findings.length).toBeGreaterThan(0);
        expect(findings.filter((f) => f.rule === 'cmk-weak-key')).toEqual([]);
        expect(findings.filter((f) => f.rule === 'cmk-no-expiry').map((f) => f.severity)).toEqual(['low']);
        // The summary counts it under the severity it was given.
        expect(run.stderr).toContain('  cmk-no-expiry (low): 1\n');
    });

    it('generateSchema writes config.schema.json as committed, in the form prettier --check accepts', async () => {
        const dir = tempDir('kvr-docs-');
        const out = join(dir, 'config.schema.json');
        const run = await kvrScript('dist/scripts/generateSchema.js', [out]);
        expect(run).toEqual({ code: 0, stderr: '' });
        // `prettier --check` as `npm run lint` runs it, with the repository's config, on the file as generated.
        const prettier = await kvrScript(require.resolve('prettier/bin/prettier.cjs'), [
            '--check',
            '--config',
            join(REPO, '.prettierrc.json'),
            out,
        ]);
        expect(prettier).toEqual({ code: 0, stderr: '' });
        expect(readFileSync(out, 'utf8')).toBe(read('config.schema.json'));
    });
});

function kvrScript(script: string, argv: readonly string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((done) => {
        execFile(process.execPath, [resolve(REPO, script), ...argv], { cwd: REPO }, (err, _stdout, stderr) =>
            done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr }),
        );
    });
}
