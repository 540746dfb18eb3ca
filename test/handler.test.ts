import { MemoryDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { createPipeline } from '../shared/app/createPipeline';
import { handleAuditBatch } from '../shared/app/handlers/handleAuditBatch';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import type { QuarantineSink } from '../shared/core/ports';
import { makeContext } from './support/context';
import { fixtureBody, fixtureText } from './support/fixtures';

function setup(quarantine: QuarantineSink = new MemoryQuarantineSink()) {
    const decisions = new MemoryDecisionSink();
    const pipeline = createPipeline(DEFAULT_CONFIG, { decisions, quarantine }, { acceptBareRecords: false });
    return { decisions, quarantine, deps: { pipeline } };
}

describe('kvAuditIngest handler', () => {
    it('accepts bodies as objects, JSON strings and Buffers in one batch', async () => {
        const { deps } = setup();
        const { context } = makeContext();
        const result = await handleAuditBatch(
            [
                fixtureBody('secret-get-success.json'),
                fixtureText('secret-get-forbidden.json'),
                Buffer.from(fixtureText('key-backup-success.json')),
            ],
            context,
            deps,
        );
        expect(result.summary).toEqual({
            bodies: 3,
            records: 3,
            events: 3,
            skipped: 0,
            rejected: 0,
            findings: 1,
            ruleErrors: 0,
        });
        expect(result.events.map((e) => [e.operation, e.outcome, e.vault.name])).toEqual([
            ['SecretGet', 'success', 'kv-payments-prod'],
            ['SecretGet', 'forbidden', 'kv-payments-prod'],
            ['KeyBackup', 'success', 'kv-payments-prod'],
        ]);
    });

    it('takes a single message (cardinality one) as a batch of one', async () => {
        const { deps } = setup();
        const { context } = makeContext();
        const result = await handleAuditBatch(fixtureBody('vault-patch-firewall-allow.json'), context, deps);
        expect(result.summary.bodies).toBe(1);
        expect(result.events[0]?.vaultChange?.networkAcls?.defaultAction).toBe('Allow');
    });

    it('processes every record of a multi-record body and skips other resource types, counting them', async () => {
        const { deps } = setup();
        const { context, logs } = makeContext();
        const result = await handleAuditBatch([fixtureText('multi-record-mixed.json')], context, deps);
        expect(result.summary).toMatchObject({ bodies: 1, records: 4, events: 3, skipped: 1, rejected: 0 });
        expect(result.events.map((e) => [e.operation, e.httpStatus, e.caller.kind])).toEqual([
            ['SecretList', 200, 'service-principal'],
            ['Authentication', 401, 'service-principal'],
            ['SecretGet', 200, 'service-principal'],
        ]);
        const batchLog = logs.find((l) => l.entry.msg === 'kvr.batch');
        expect(batchLog?.entry).toMatchObject({ records: 4, events: 3, skipped: 1 });
    });

    it('quarantines malformed items without failing the batch, and processes the rest', async () => {
        const quarantine = new MemoryQuarantineSink();
        const { deps, decisions } = setup(quarantine);
        const { context, logs } = makeContext({
            partitionContext: { partitionId: '3' },
            sequenceNumberArray: [10, 11, 12, 13, 14, 15],
        });
        const result = await handleAuditBatch(
            [
                fixtureText('malformed/not-json.json'),
                fixtureText('malformed/records-not-array.json'),
                fixtureBody('malformed/record-missing-fields.json'),
                Buffer.from(fixtureText('malformed/huge-string-field.json')),
                42,
                fixtureBody('secret-purge-success.json'),
            ],
            context,
            deps,
        );
        expect(result.summary).toEqual({
            bodies: 6,
            records: 5,
            events: 2,
            skipped: 0,
            rejected: 6,
            findings: 1,
            ruleErrors: 0,
        });
        expect(result.events.map((e) => e.operation)).toEqual(['SecretGet', 'SecretPurge']);
        expect(quarantine.items.map((q) => q.source)).toEqual([
            'partition 3 sequence 10',
            'partition 3 sequence 11',
            'partition 3 sequence 12 record 1 of 3',
            'partition 3 sequence 12 record 2 of 3',
            'partition 3 sequence 13',
            'partition 3 sequence 14',
        ]);
        // The whole item is kept in quarantine; logs carry only a bounded excerpt.
        const huge = quarantine.items[4]?.raw as { properties: { clientInfo: string } };
        expect(huge.properties.clientInfo).toHaveLength(200_000);
        expect(quarantine.items[4]?.excerpt.length).toBeLessThan(300);
        expect(quarantine.items[5]?.raw).toBe(42);
        const rejectedLogs = logs.filter((l) => l.entry.msg === 'kvr.rejected');
        expect(rejectedLogs).toHaveLength(6);
        expect(rejectedLogs.every((l) => l.level === 'warning' && String(l.entry.excerpt).length < 300)).toBe(true);
        expect(decisions.decisions.filter((d) => d.type === 'rejected')).toHaveLength(6);
        expect(
            decisions.decisions.filter((d) => d.type === 'finding').map((d) => d.type === 'finding' && d.rule),
        ).toEqual(['sensitive-operation']);
    });

    it('throws (for the trigger retry policy) when the quarantine cannot be written', async () => {
        const failing: QuarantineSink = { put: () => Promise.reject(new Error('storage unreachable')) };
        const { deps } = setup(failing);
        const { context, logs } = makeContext();
        await expect(handleAuditBatch([fixtureText('malformed/not-json.json')], context, deps)).rejects.toThrow(
            'storage unreachable',
        );
        expect(logs.find((l) => l.entry.msg === 'kvr.batch-failed')?.level).toBe('error');
    });

    it('logs findings with rule, vault and summary', async () => {
        const { deps } = setup();
        const { context, logs } = makeContext();
        await handleAuditBatch([fixtureBody('secret-purge-success.json')], context, deps);
        const finding = logs.find((l) => l.entry.msg === 'kvr.finding');
        expect(finding?.entry).toMatchObject({
            rule: 'sensitive-operation',
            severity: 'high',
            vault: 'kv-sandbox-dev',
        });
    });
});
