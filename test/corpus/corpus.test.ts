import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfigText } from '../../shared/config/responderConfig';
import type { FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';

const DIR = join(__dirname, '..', 'fixtures', 'rules');
const config = parseResponderConfigText(
    readFileSync(join(DIR, 'corpus-config.json'), 'utf8'),
    ruleIds,
    'corpus-config.json',
);

interface Fixture {
    readonly rule: string;
    readonly file: string;
    readonly text: string;
    readonly expect: readonly string[];
}

const fixtures: Fixture[] = readdirSync(DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
        readdirSync(join(DIR, d.name))
            .filter((f) => f.endsWith('.json'))
            .map((f) => {
                const text = readFileSync(join(DIR, d.name, f), 'utf8');
                return { rule: d.name, file: f, text, expect: (JSON.parse(text) as { expect: string[] }).expect };
            }),
    );

function pipeline() {
    const decisions = new MemoryDecisionSink();
    return {
        decisions,
        p: createPipeline(config, { decisions, quarantine: new MemoryQuarantineSink() }, { acceptBareRecords: false }),
    };
}

function firedRules(decisions: readonly { type: string }[]): string[] {
    return [...new Set(decisions.filter((d): d is FindingDecision => d.type === 'finding').map((d) => d.rule))].sort();
}

describe('rule corpus: every fixture through the whole pipeline', () => {
    it.each(fixtures.map((f) => [`${f.rule}/${f.file}`, f] as const))(
        '%s fires exactly its expected rules',
        async (_name, f) => {
            const { decisions, p } = pipeline();
            await p.processBatch([{ body: f.text }]);
            expect(decisions.decisions.filter((d) => d.type === 'rejected' || d.type === 'error')).toEqual([]);
            expect(firedRules(decisions.decisions)).toEqual([...f.expect].sort());
        },
    );

    it.each(fixtures.map((f) => [`${f.rule}/${f.file}`, f] as const))(
        '%s gives no new finding when delivered again',
        async (_name, f) => {
            const { decisions, p } = pipeline();
            await p.processBatch([{ body: f.text }]);
            const first = decisions.decisions.length;
            await p.processBatch([{ body: f.text }]);
            expect(decisions.decisions.slice(first)).toEqual([]);
        },
    );

    it('holds, for every rule, fixtures that fire it and fixtures that must stay quiet', () => {
        for (const id of ruleIds) {
            const own = fixtures.filter((f) => f.rule === id);
            const fires = own.filter((f) => f.file.startsWith('fires.'));
            const quiet = own.filter((f) => f.file.startsWith('quiet.'));
            expect({ id, fires: fires.length > 0, quiet: quiet.length > 0 }).toEqual({ id, fires: true, quiet: true });
            for (const f of fires) expect(f.expect).toContain(id);
            for (const f of quiet) expect(f.expect).not.toContain(id);
        }
        expect(fixtures.every((f) => f.file.startsWith('fires.') || f.file.startsWith('quiet.'))).toBe(true);
    });
});
