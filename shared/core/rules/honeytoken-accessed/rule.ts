import type { StatelessRule } from '../../engine/rule';
import { describeCaller, describeTarget } from '../text';

export const honeytokenAccessed: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'honeytoken-accessed',
        title: 'Key Vault honeytoken accessed',
        severity: 'critical',
        mitre: ['T1555.006', 'T1552'],
        description:
            'Any access, allowed or denied, to a secret, key or certificate configured as a decoy. No workload uses a decoy, so every access is someone exploring the vault (or a tool that enumerates everything).',
        falsePositives: [
            'A backup or inventory tool that reads every object: exclude it by giving decoys to vaults it does not scan.',
        ],
        references: ['https://github.com/Azure/Azure-Sentinel/blob/master/Solutions/HoneyTokens/README.md'],
        runbook: [
            'Treat the caller as compromised: find its sign-in and what else it touched.',
            'Disable the principal and rotate what it could read.',
        ],
    },
    operations: undefined,
    evaluate(event, ctx) {
        const decoys = ctx.settings.decoys;
        const t = event.target;
        if (decoys.length === 0 || t?.name === undefined) return undefined;
        const name = t.name.toLowerCase();
        const hit = decoys.some(
            (d) =>
                d.name === name &&
                (d.kind === undefined || d.kind === t.kind) &&
                (d.vault === undefined || d.vault === event.vault.name),
        );
        if (!hit) return undefined;
        return [
            {
                summary: `decoy ${describeTarget(event)} touched by ${describeCaller(event)} (${event.operation}, HTTP ${event.httpStatus ?? '?'})`,
                groupKey: name,
            },
        ];
    },
};
