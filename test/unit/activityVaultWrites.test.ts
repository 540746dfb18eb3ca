// Activity Log vault writes (MICROSOFT.KEYVAULT/VAULTS/WRITE, .../VAULTS/ACCESSPOLICIES/WRITE) ask for a reconcile of
// the vault against ARM, even when no AuditEvent carried the change: records of test/fixtures/activity-log/vault-writes.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { intentInputsOf } from '../../shared/app/reconcileTriggers';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import { normalizeActivity } from '../../shared/core/events/activity';
import type { AuditEvent } from '../../shared/core/events/types';
import { ruleIds } from '../../shared/core/rules';
import { REPO } from '../support/cli';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const PAYMENTS = `/subscriptions/${SUB}/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/kv-payments-prod`;
const RECORDS = (
    JSON.parse(readFileSync(join(REPO, 'test/fixtures/activity-log/vault-writes.json'), 'utf8')) as {
        records: Record<string, unknown>[];
    }
).records;

function events(): AuditEvent[] {
    return RECORDS.map((r) => {
        const n = normalizeActivity(r, String(r.category));
        if (n.kind !== 'event') throw new Error(`fixture record not an event: ${JSON.stringify(n)}`);
        return n.event;
    });
}

function settings(known: string[] = [PAYMENTS]) {
    return parseResponderConfig(
        {
            guardrails: { overrides: known.map((resourceId) => ({ match: { resourceId }, mode: 'enforce' })) },
            responderIdentities: ['5e5e5e5e-0000-4000-8000-00000000005e'],
        },
        ruleIds,
        'test',
    ).detection;
}

describe('Activity Log vault writes trigger a reconcile', () => {
    it('the fixture records normalize with their vault, operation and outcome', () => {
        expect(events().map((e) => [e.vault.name, e.operation, e.activity?.resultType, e.outcome])).toEqual([
            ['kv-payments-prod', 'MICROSOFT.KEYVAULT/VAULTS/WRITE', 'Start', 'unknown'],
            ['kv-payments-prod', 'MICROSOFT.KEYVAULT/VAULTS/WRITE', 'Success', 'success'],
            ['kv-payments-prod', 'MICROSOFT.KEYVAULT/VAULTS/ACCESSPOLICIES/WRITE', 'Success', 'success'],
            ['kv-payments-prod', 'MICROSOFT.KEYVAULT/VAULTS/WRITE', 'Failure', 'forbidden'],
            ['kv-payments-prod', 'MICROSOFT.KEYVAULT/VAULTS/WRITE', 'Success', 'success'],
            ['kv-unknown-dev', 'MICROSOFT.KEYVAULT/VAULTS/WRITE', 'Success', 'success'],
        ]);
    });

    it('a successful vault write and access-policy update on a known vault ask for a reconcile; Start, Failure, the responder’s own write and unknown vaults do not', async () => {
        const all = events();
        const inputs = await intentInputsOf(all, [], settings(), undefined);
        expect(inputs.map((i) => [i.vault.name, i.reason, i.correlationIds, i.timeMs])).toEqual([
            ['kv-payments-prod', 'vault-write', [all[1]?.correlationId], all[1]?.timeMs],
            ['kv-payments-prod', 'vault-write', [all[2]?.correlationId], all[2]?.timeMs],
        ]);
        expect(inputs[0]?.vault.resourceId).toBe(PAYMENTS.toLowerCase());
        // Each alone: the Start record, the denied write, the responder's write, the unknown vault ask for nothing.
        for (const i of [0, 3, 4, 5])
            expect(await intentInputsOf([all[i] as AuditEvent], [], settings(), undefined)).toEqual([]);
        // A vault the configuration does not name is reconciled once it does.
        const other = `/subscriptions/${SUB}/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults/kv-unknown-dev`;
        expect(
            (await intentInputsOf([all[5] as AuditEvent], [], settings([PAYMENTS, other]), undefined)).map(
                (i) => i.vault.name,
            ),
        ).toEqual(['kv-unknown-dev']);
    });
});
