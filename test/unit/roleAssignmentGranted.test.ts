import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';

const FIXTURE = join(
    __dirname,
    '..',
    'fixtures',
    'rules',
    'role-assignment-granted',
    'fires.resource-group-scope.json',
);
/** Start (with the body) and Success (status only) of Key Vault Secrets User for the stranger app at rg-payments. */
const [start, success] = (JSON.parse(readFileSync(FIXTURE, 'utf8')) as { records: unknown[] }).records;
const STRANGER = 'e7e7e7e7-0000-4000-8000-0000000000e7';
const VAULT =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/kv-payments-prod';

async function findingsWith(config: unknown, batches: unknown[][]): Promise<FindingDecision[]> {
    const decisions = new MemoryDecisionSink();
    const p = createPipeline(
        parseResponderConfig(config, ruleIds, 'test'),
        { decisions, quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: false },
    );
    for (const records of batches) await p.processBatch([{ body: { records } }]);
    return decisions.decisions.filter((d): d is FindingDecision => d.type === 'finding');
}

describe('role-assignment-granted', () => {
    it('joins the Start and Success records delivered in separate batches, in either order', async () => {
        for (const order of [
            [[start], [success]],
            [[success], [start]],
        ]) {
            const found = await findingsWith({}, order);
            expect(found.map((f) => [f.rule, f.principal, f.role])).toEqual([
                ['role-assignment-granted', STRANGER, 'Key Vault Secrets User'],
            ]);
        }
    });

    it('checks an assignment above vaults against every known vault it covers', async () => {
        const approvedAnyRole = { guardrails: { default: { approvedPrincipals: [{ objectId: STRANGER }] } } };
        expect(await findingsWith(approvedAnyRole, [[start, success]])).toEqual([]);
        // The vault's own policy narrows the principal to one role: the resource-group grant exceeds it.
        const narrowed = {
            guardrails: {
                default: { approvedPrincipals: [{ objectId: STRANGER }] },
                overrides: [
                    {
                        match: { resourceId: VAULT },
                        approvedPrincipals: [{ objectId: STRANGER, roles: ['Key Vault Certificate User'] }],
                    },
                ],
            },
        };
        const found = await findingsWith(narrowed, [[start, success]]);
        expect(found.map((f) => [f.principal, f.coveredVaults])).toEqual([[STRANGER, [VAULT.toLowerCase()]]]);
        // A known vault in another resource group is not covered.
        const elsewhere = {
            guardrails: {
                default: { approvedPrincipals: [{ objectId: STRANGER }] },
                overrides: [
                    {
                        match: { resourceId: VAULT.replace('rg-payments', 'rg-hr') },
                        approvedPrincipals: [{ objectId: STRANGER, roles: ['Key Vault Certificate User'] }],
                    },
                ],
            },
        };
        expect(await findingsWith(elsewhere, [[start, success]])).toEqual([]);
    });
});
