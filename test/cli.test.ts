import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decisionsOf, runKvr, runKvrBinary } from './support/cli';
import { FIXTURES, fixtureBody, fixtureText } from './support/fixtures';
import { tempDir } from './support/tempDirs';

function tmp(): string {
    return tempDir('kvr-cli-');
}

const FINDING_KEYS = [
    'type',
    'rule',
    'severity',
    'vault',
    'vaultId',
    'time',
    'operations',
    'correlationIds',
    'count',
    'summary',
];

describe('kvr replay over the reference fixtures', () => {
    let run: Awaited<ReturnType<typeof runKvr>>;
    beforeAll(async () => {
        run = await runKvr('replay', FIXTURES);
    });

    it('exits 3 (processed with problems: the malformed fixtures are rejected) and prints a valid decision log', () => {
        expect(run.code).toBe(3);
        const decisions = decisionsOf(run.stdout);
        expect(decisions.length).toBeGreaterThan(0);
        for (const d of decisions) expect(['finding', 'action', 'rejected', 'error']).toContain(d.type);
    });

    it('reports every malformed input as a rejected line naming its file', () => {
        const rejected = decisionsOf(run.stdout).filter((d) => d.type === 'rejected');
        const files = rejected.map((d) =>
            String(d.source)
                .replace(/^.*malformed\//, '')
                .replace(/:\d+.*$/, ''),
        );
        expect(files.sort()).toEqual([
            'huge-string-field.json',
            'not-json.json',
            'record-missing-fields.json',
            'record-missing-fields.json',
            'records-not-array.json',
        ]);
        for (const d of rejected) {
            expect(typeof d.reason).toBe('string');
            expect(String(d.excerpt).length).toBeLessThan(300);
        }
    });

    it('processes everything else, including the valid record next to the bad ones', () => {
        expect(run.stderr).toMatch(/28 records/);
        expect(run.stderr).toMatch(/processed 24 Key Vault audit events; skipped 1 other records \(other-category 1\)/);
        expect(run.stderr).toMatch(/rejected 5 \(2 bodies, 3 records\)/);
        expect(run.stderr).toMatch(/ignored 1 non-capture file\(s\): .*README\.md/);
    });

    it('emits findings in the documented shape', () => {
        const findings = decisionsOf(run.stdout).filter((d) => d.type === 'finding');
        expect(findings.map((f) => f.operations)).toEqual(expect.arrayContaining([['KeyBackup'], ['SecretPurge']]));
        for (const f of findings) {
            for (const k of FINDING_KEYS) expect(f).toHaveProperty(k);
            expect(f.vault).toBe(String(f.vault).toLowerCase());
            expect(f.vaultId).toBe(String(f.vaultId).toLowerCase());
        }
    });

    it('gives the same decision log when replayed again', async () => {
        const again = await runKvr('replay', FIXTURES);
        expect(again.stdout).toBe(run.stdout);
    });
});

describe('kvr replay input formats', () => {
    const purge = fixtureBody('secret-purge-success.json');
    const record = purge.records[0];

    it.each([
        ['one body, pretty-printed', 'a.json', JSON.stringify(purge, null, 2)],
        ['a JSON array of bodies', 'a.json', JSON.stringify([purge, { records: [] }])],
        ['a JSON array of records', 'a.json', JSON.stringify([record])],
        ['JSON Lines of bodies', 'a.jsonl', `${JSON.stringify(purge)}\n${JSON.stringify({ records: [] })}\n`],
        ['JSON Lines of records (PT1H.json)', 'PT1H.json', `${JSON.stringify(record)}\n`],
    ])('reads %s', async (_name, file, content) => {
        const dir = tmp();
        writeFileSync(join(dir, file), content);
        const run = await runKvr('replay', join(dir, file));
        expect(run.code).toBe(0);
        expect(decisionsOf(run.stdout).map((d) => d.rule)).toEqual(['sensitive-operation']);
    });

    it('reads gzip files by content and walks directories recursively', async () => {
        const dir = tmp();
        mkdirSync(join(dir, 'y=2026', 'm=10'), { recursive: true });
        writeFileSync(join(dir, 'y=2026', 'm=10', 'PT1H.json.gz'), gzipSync(fixtureText('PT1H.json')));
        writeFileSync(join(dir, 'capture.json'), gzipSync(fixtureText('secret-purge-success.json')));
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(0);
        expect(run.stderr).toMatch(/2 files, 4 bodies, 4 records/);
        expect(decisionsOf(run.stdout).filter((d) => d.type === 'finding')).toHaveLength(1);
    });

    it('rejects a bad line of a JSON Lines file and keeps reading', async () => {
        const dir = tmp();
        const lines = fixtureText('PT1H.json').trim().split('\n');
        lines.splice(1, 0, '{"time": "2026-10-05T10:20:30Z", "broken');
        writeFileSync(join(dir, 'PT1H.json'), `${lines.join('\n')}\n`);
        const run = await runKvr('replay', dir);
        expect(run.code).toBe(3);
        const rejected = decisionsOf(run.stdout).filter((d) => d.type === 'rejected');
        expect(rejected).toEqual([
            expect.objectContaining({ reason: 'unterminated string', source: `${join(dir, 'PT1H.json')}:2` }),
        ]);
        expect(run.stderr).toMatch(/processed 3 Key Vault audit events/);
    });
});

describe('kvr replay outputs', () => {
    it('writes the decision log to --decisions and quarantines whole items with --quarantine', async () => {
        const dir = tmp();
        const out = join(dir, 'decisions.jsonl');
        const q = join(dir, 'q');
        const run = await runKvr('replay', join(FIXTURES, 'malformed'), '--decisions', out, '--quarantine', q);
        expect(run.code).toBe(3);
        expect(run.stdout).toBe('');
        expect(run.stderr).toContain(`decision log: ${out}`);
        expect(decisionsOf(readFileSync(out, 'utf8')).filter((d) => d.type === 'rejected')).toHaveLength(5);
        const kept = decisionsOf(readFileSync(join(q, 'quarantine.jsonl'), 'utf8'));
        expect(kept).toHaveLength(5);
        const huge = kept.find((k) => String(k.reason).includes('clientInfo'));
        expect(String(huge?.raw).length).toBeGreaterThan(200_000);
    });
});

describe('kvr errors', () => {
    it('fails with one line for an unreadable path, before any output', async () => {
        const run = await runKvr('replay', FIXTURES, '/nonexistent/capture.json');
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        expect(run.stderr).toBe("kvr: cannot read '/nonexistent/capture.json': no such file or directory\n");
    });

    it('lists every config problem, one per line', async () => {
        const dir = tmp();
        const cfg = join(dir, 'bad.json');
        writeFileSync(
            cfg,
            JSON.stringify({
                rules: { 'no-such-rule': { enabled: true }, 'sensitive-operation': { severity: 'urgent' } },
                extra: 1,
            }),
        );
        const run = await runKvr('replay', FIXTURES, '--config', cfg);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        const [head, ...problems] = run.stderr.trimEnd().split('\n');
        expect(head).toBe(`kvr: invalid config ${cfg}: ${problems.length} problems:`);
        expect(problems.length).toBeGreaterThanOrEqual(3);
        for (const p of problems) expect(p).toMatch(/^ {2}- \S/);
        expect(problems.filter((p) => p.includes('rules.sensitive-operation.severity'))).toHaveLength(1);
        expect(problems.filter((p) => p.includes('extra'))).toHaveLength(1);
        expect(problems.filter((p) => p.includes('rules.no-such-rule: unknown rule id'))).toHaveLength(1);
    });

    it('reports a config that is not JSON', async () => {
        const dir = tmp();
        const cfg = join(dir, 'bad.json');
        writeFileSync(cfg, '{ rules: ');
        const run = await runKvr('replay', FIXTURES, '--config', cfg);
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(/^kvr: invalid config .*bad\.json: not valid JSON: /);
    });

    it('applies a valid config (a disabled rule reports nothing)', async () => {
        const dir = tmp();
        const cfg = join(dir, 'ok.json');
        writeFileSync(cfg, JSON.stringify({ rules: { 'sensitive-operation': { enabled: false } } }));
        const run = await runKvr('replay', FIXTURES, '--config', cfg);
        expect(run.code).toBe(3);
        const rulesFired = decisionsOf(run.stdout).map((d) => d.rule);
        expect(rulesFired).not.toContain('sensitive-operation');
        expect(rulesFired).toContain('cmk-access-denied');
    });

    it.each([
        [['replay'], /^kvr: replay needs at least one file or directory; see 'kvr replay --help'\n$/],
        [['replay', FIXTURES, '--bogus'], /^kvr: unknown option '--bogus'; see 'kvr replay --help'\n$/],
        [['frobnicate'], /^kvr: unknown command 'frobnicate'/],
    ])('rejects bad usage %j with exit 2', async (argv, message) => {
        const run = await runKvr(...argv);
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(message);
    });
});

describe('the built kvr binary', () => {
    it('replays the fixtures with the same exit status and log as in-process', async () => {
        const [bin, inproc] = await Promise.all([runKvrBinary(['replay', FIXTURES]), runKvr('replay', FIXTURES)]);
        expect(bin.code).toBe(3);
        expect(inproc.code).toBe(3);
        expect(bin.stdout).toBe(inproc.stdout);
    });

    it('exits 2 for an unreadable path', async () => {
        const dir = tmp();
        copyFileSync(join(FIXTURES, 'secret-get-success.json'), join(dir, 'ok.json'));
        const run = await runKvrBinary(['replay', join(dir, 'ok.json'), join(dir, 'missing.json')]);
        expect(run.code).toBe(2);
        expect(run.stderr.trim().split('\n')).toHaveLength(1);
    });
});
