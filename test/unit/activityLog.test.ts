import { parseScope, scopeCovers } from '../../shared/core/events/activity';
import { RecordNormalizer } from '../../shared/core/events/normalize';
import type { AuditEvent } from '../../shared/core/events/types';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import { ConfigError } from '../../shared/core/errors';
import { ruleIds } from '../../shared/core/rules';
import { roleIdOf } from '../../shared/core/rules/roles';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
const VAULT = `/subscriptions/${SUB}/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/kv-payments-prod`;
const RA = `/subscriptions/${SUB}/resourceGroups/rg-payments/providers/Microsoft.Authorization/roleAssignments/0d6c1a8e-2f4b-4e57-9a3c-5b8d7e6f4a21`;

/** The real record of the public sample (shaN480/Dynatrace img/log3.sh), trimmed, with fictitious identifiers. */
function record(overrides: Record<string, unknown> = {}, props: Record<string, unknown> = {}): Record<string, unknown> {
    return {
        RoleLocation: 'East US 2',
        time: '2026-10-05T09:00:00.0559464Z',
        resourceId: RA.toUpperCase(),
        operationName: 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE',
        category: 'Administrative',
        resultType: 'Success',
        resultSignature: 'Succeeded.',
        durationMs: '0',
        callerIpAddress: '203.0.113.66',
        correlationId: '0c808bf1-beec-4a23-88d7-ed1a5adcbee6',
        identity: {
            authorization: {
                scope: RA,
                action: 'Microsoft.Authorization/roleAssignments/write',
                evidence: {
                    role: 'Owner',
                    roleAssignmentScope: `/subscriptions/${SUB}`,
                    roleDefinitionId: '8e3af657a8ff443ca75c2fe8c4bcb635',
                    principalId: 'bad0bad000004000800000000000000d',
                    principalType: 'User',
                },
            },
            claims: {
                appid: 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c',
                ipaddr: '203.0.113.66',
                'http://schemas.microsoft.com/identity/claims/objectidentifier': 'bad0bad0-0000-4000-8000-00000000000d',
                'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': 'mallory@contoso.example',
            },
        },
        level: 'Information',
        properties: {
            statusCode: 'Created',
            eventCategory: 'Administrative',
            entity: RA,
            message: 'Microsoft.Authorization/roleAssignments/write',
            hierarchy: `${TENANT}/${SUB}`,
            ...props,
        },
        tenantId: TENANT,
        ...overrides,
    };
}

const BODY = JSON.stringify({
    Id: '0d6c1a8e-2f4b-4e57-9a3c-5b8d7e6f4a21',
    Properties: {
        PrincipalId: 'E7E7E7E7-0000-4000-8000-0000000000E7',
        PrincipalType: 'ServicePrincipal',
        RoleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6`,
        Scope: `/subscriptions/${SUB}/resourceGroups/rg-payments`,
    },
});

function normalize(raw: unknown): AuditEvent {
    const r = new RecordNormalizer().normalize(raw);
    if (r.kind !== 'event') throw new Error(`expected an event, got ${r.kind}: ${'reason' in r ? r.reason : ''}`);
    return r.event;
}

function resultOf(raw: unknown) {
    return new RecordNormalizer().normalize(raw);
}

describe('normalizing an Activity Log role assignment write', () => {
    it('reads assignee, role and scope from the request body, the caller from the URI claims', () => {
        const e = normalize(
            record({ resultType: 'Start', resultSignature: 'Started.' }, { requestbody: BODY, statusCode: undefined }),
        );
        expect(e.activity?.roleAssignment).toEqual({
            id: RA.toLowerCase(),
            name: '0d6c1a8e-2f4b-4e57-9a3c-5b8d7e6f4a21',
            scope: {
                level: 'resource-group',
                id: `/subscriptions/${SUB}/resourcegroups/rg-payments`,
                subscriptionId: SUB,
                resourceGroup: 'rg-payments',
                managementGroup: undefined,
            },
            principalId: 'e7e7e7e7-0000-4000-8000-0000000000e7',
            principalType: 'ServicePrincipal',
            roleDefinitionId: '4633458b-17de-408a-b874-0445c86b69e6',
        });
        expect(e.caller).toMatchObject({
            objectId: 'bad0bad0-0000-4000-8000-00000000000d',
            upn: 'mallory@contoso.example',
            kind: 'user',
            ipAddress: '203.0.113.66',
        });
        expect(e.operation).toBe('MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE');
        // A scope above vaults gets a stand-in vault that names it.
        expect(e.vault).toEqual({
            subscriptionId: SUB,
            resourceGroup: 'rg-payments',
            name: `rg:${SUB}:rg-payments`,
            resourceId: `/subscriptions/${SUB}/resourcegroups/rg-payments`,
        });
        expect(e.activity?.hasBody).toBe(true);
    });

    it('reads the same caller from short claim names', () => {
        const e = normalize(
            record({
                identity: { claims: { oid: 'BAD0BAD0-0000-4000-8000-00000000000D', upn: 'mallory@contoso.example' } },
            }),
        );
        expect(e.caller).toMatchObject({ objectId: 'bad0bad0-0000-4000-8000-00000000000d', kind: 'user' });
    });

    it('falls back to the authorization evidence when the record has no claims', () => {
        const e = normalize(
            record({ identity: { authorization: (record().identity as { authorization: unknown }).authorization } }),
        );
        expect(e.caller.objectId).toBe('bad0bad0-0000-4000-8000-00000000000d');
    });

    it('takes the outcome from the HTTP status, and leaves Start and Accept records unfinished', () => {
        expect(normalize(record()).outcome).toBe('success');
        expect(normalize(record({}, { statusCode: undefined })).outcome).toBe('success'); // "Succeeded."
        expect(
            normalize(record({ resultType: 'Failure', resultSignature: 'Failed.' }, { statusCode: 'Forbidden' }))
                .outcome,
        ).toBe('forbidden');
        // resultType says Success, the status says 403: the status wins.
        expect(normalize(record({}, { statusCode: 403 })).outcome).toBe('forbidden');
        expect(normalize(record({ resultSignature: 'Failed.Conflict' }, { statusCode: undefined })).outcome).toBe(
            'conflict',
        );
        expect(normalize(record({ resultType: 'Start' })).outcome).toBe('unknown');
        expect(normalize(record({ resultType: 'Accept' }, { statusCode: 'Accepted' })).outcome).toBe('unknown');
        expect(
            normalize(record({ resultType: 'Failure', resultSignature: 'Failed.' }, { statusCode: undefined })).outcome,
        ).toBe('unknown');
    });

    it('accepts the Event Hubs categories Write, Delete and Action and the REST operationName object', () => {
        expect(normalize(record({ category: 'Write' })).activity?.category).toBe('Write');
        expect(
            normalize(
                record({
                    operationName: {
                        value: 'Microsoft.Authorization/roleAssignments/write',
                        localizedValue: 'Create role assignment',
                    },
                }),
            ).operation,
        ).toBe('MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE');
    });

    it('keeps assignments at a vault, below a vault, a subscription, a management group and the root', () => {
        const at = (scope: string) =>
            normalize(record({ resourceId: `${scope}/providers/Microsoft.Authorization/roleAssignments/0d6c1a8e` }))
                .activity?.roleAssignment?.scope.level;
        expect(at(VAULT)).toBe('vault');
        expect(at(`${VAULT}/secrets/db-password`)).toBe('vault');
        expect(at(`/subscriptions/${SUB}`)).toBe('subscription');
        expect(at('/providers/Microsoft.Management/managementGroups/mg-prod')).toBe('management-group');
        expect(at('')).toBe('tenant');
        const e = normalize(
            record({ resourceId: `${VAULT}/secrets/x/providers/Microsoft.Authorization/roleAssignments/0d6c1a8e` }),
        );
        expect(e.vault.name).toBe('kv-payments-prod');
    });
});

describe('what the Activity Log input skips and rejects', () => {
    it('skips assignments on other resources, other operations and diagnostic settings of other resources', () => {
        const storage = `/subscriptions/${SUB}/resourceGroups/rg-payments/providers/Microsoft.Storage/storageAccounts/st1`;
        expect(
            resultOf(record({ resourceId: `${storage}/providers/Microsoft.Authorization/roleAssignments/x` })),
        ).toEqual({
            kind: 'skipped',
            reason: 'other-resource-type',
        });
        expect(resultOf(record({ operationName: 'MICROSOFT.RESOURCES/SUBSCRIPTIONS/RESOURCEGROUPS/DELETE' }))).toEqual({
            kind: 'skipped',
            reason: 'other-resource-type',
        });
        expect(
            resultOf(
                record({
                    operationName: 'MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/DELETE',
                    resourceId: `${storage}/providers/microsoft.insights/diagnosticSettings/d`,
                }),
            ),
        ).toEqual({ kind: 'skipped', reason: 'other-resource-type' });
        expect(resultOf(record({ category: 'ServiceHealth' }))).toEqual({ kind: 'skipped', reason: 'other-category' });
    });

    it('rejects a kept record with every problem listed', () => {
        expect(
            resultOf(record({ time: 'yesterday', resourceId: undefined, identity: 7 }, { entity: undefined })),
        ).toEqual({
            kind: 'rejected',
            reason: 'resourceId missing; time not an ISO 8601 timestamp; identity not an object',
        });
        expect(resultOf(record({ operationName: undefined }))).toEqual({
            kind: 'rejected',
            reason: 'operationName missing',
        });
        const long = 'x'.repeat(9000);
        expect(resultOf(record({ resultDescription: long }))).toEqual({
            kind: 'rejected',
            reason: 'resultDescription longer than 8192 characters',
        });
    });
});

describe('diagnostic settings', () => {
    const id = `${VAULT}/providers/microsoft.insights/diagnosticSettings/kvr-audit`;
    it('reads the enabled log categories and the destination from the request body', () => {
        const e = normalize(
            record(
                { operationName: 'MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE', resourceId: id.toUpperCase() },
                {
                    requestbody: JSON.stringify({
                        properties: {
                            eventHubAuthorizationRuleId:
                                '/subscriptions/S/resourceGroups/R/providers/Microsoft.EventHub/namespaces/N/authorizationRules/A',
                            eventHubName: 'KV-Audit',
                            logs: [
                                { category: 'AuditEvent', enabled: false },
                                { categoryGroup: 'allLogs', enabled: true },
                            ],
                        },
                    }),
                },
            ),
        );
        expect(e.vault.name).toBe('kv-payments-prod');
        expect(e.activity?.diagnosticSetting).toEqual({
            name: 'kvr-audit',
            body: {
                eventHubAuthorizationRuleId:
                    '/subscriptions/s/resourcegroups/r/providers/microsoft.eventhub/namespaces/n/authorizationrules/a',
                eventHubName: 'kv-audit',
                enabledLogs: ['alllogs'],
            },
        });
    });
});

describe('scopes', () => {
    const vault = parseScope(VAULT)?.vault;
    it('cover the vaults beneath them', () => {
        if (vault === undefined) throw new Error('no vault');
        const s = (id: string) => parseScope(id)?.scope as NonNullable<ReturnType<typeof parseScope>>['scope'];
        expect(scopeCovers(s(`/subscriptions/${SUB}/resourceGroups/rg-payments`), vault)).toBe(true);
        expect(scopeCovers(s(`/subscriptions/${SUB}/resourceGroups/rg-hr`), vault)).toBe(false);
        expect(scopeCovers(s(`/subscriptions/${SUB}`), vault)).toBe(true);
        expect(scopeCovers(s('/subscriptions/00000000-0000-4000-8000-000000000000'), vault)).toBe(false);
        const mg = s('/providers/Microsoft.Management/managementGroups/mg-prod');
        expect(scopeCovers(mg, vault)).toBe(true);
        expect(scopeCovers(s('/'), vault)).toBe(true);
    });
});

describe('config: approved roles, sensitive operations, known vaults', () => {
    it('takes built-in role names or GUIDs and lists unknown ones', () => {
        expect(roleIdOf('key vault secrets user')).toBe('4633458b-17de-408a-b874-0445c86b69e6');
        let problems: readonly string[] = [];
        try {
            parseResponderConfig(
                {
                    guardrails: {
                        default: {
                            approvedPrincipals: [
                                {
                                    objectId: 'c0c0c0c0-0000-4000-8000-0000000000a1',
                                    roles: ['Key Vault Secret User', 'Owner'],
                                },
                            ],
                        },
                    },
                    sensitiveOperations: ['Secret Purge'],
                },
                ruleIds,
                'test',
            );
        } catch (err) {
            if (err instanceof ConfigError) problems = err.problems;
        }
        expect(problems).toHaveLength(2);
        expect(problems[0]).toMatch(
            /^guardrails\.default\.approvedPrincipals\.0\.roles\.0: expected a role definition GUID or a built-in role name/,
        );
        expect(problems[1]).toMatch(/^sensitiveOperations\.0: expected an AuditEvent operation name/);
    });

    it('resolves roles per principal, the sensitive-operation list and the known vaults', () => {
        const c = parseResponderConfig(
            {
                guardrails: {
                    default: {
                        approvedPrincipals: [
                            { objectId: 'C0C0C0C0-0000-4000-8000-0000000000A1', roles: ['Key Vault Secrets User'] },
                            { objectId: 'd3d3d3d3-0000-4000-8000-0000000000d3' },
                        ],
                    },
                    overrides: [{ match: { resourceId: VAULT }, mode: 'enforce' }],
                },
                sensitiveOperations: ['SecretPurge'],
            },
            ruleIds,
            'test',
        );
        const policy = c.detection.policyFor(
            parseScope(VAULT)?.vault as NonNullable<ReturnType<typeof parseScope>>['vault'] & object,
        );
        expect([...(policy.approvedRoles?.get('c0c0c0c0-0000-4000-8000-0000000000a1') ?? [])]).toEqual([
            '4633458b-17de-408a-b874-0445c86b69e6',
        ]);
        expect(policy.approvedRoles?.has('d3d3d3d3-0000-4000-8000-0000000000d3')).toBe(false);
        expect([...c.detection.sensitiveOperations]).toEqual(['SecretPurge']);
        expect(c.detection.knownVaults.map((v) => v.name)).toEqual(['kv-payments-prod']);
    });

    it('adds VaultPurge, recovers and restores to the default sensitive operations', () => {
        const c = parseResponderConfig({}, ruleIds, 'test');
        for (const op of [
            'VaultPurge',
            'SecretRecover',
            'KeyRecover',
            'CertificateRecover',
            'KeyRestore',
            'SecretRestore',
            'CertificateRestore',
        ])
            expect(c.detection.sensitiveOperations.has(op)).toBe(true);
    });
});
