// Role assignments through the real @azure/arm-authorization client and diagnostic settings through ArmAccessAdmin's
// REST calls, against the ARM simulator (HTTPS, test CA), checked against the vendored official specifications, with
// every injectable fault class.
import { accessAdminFor, authorizationClientFor } from '../fakes/armClient';
import { armAccessRoutes, type ArmAccessRoutes } from '../../shared/simulation/armAccessRoutes';
import { type ArmKeyVaultFake, makeVault, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import { isTransient, statusOf } from '../../shared/app/armCalls';
import { rawHttps } from '../support/rawHttps';

const SUB = '00000000-0000-0000-0000-000000000001';
const RG = 'rg-kv';
const VAULT_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/kv-rbac`;
const RG_SCOPE = `/subscriptions/${SUB}/resourceGroups/${RG}`;
const USER = '11111111-2222-3333-4444-555555555555';
const SECRETS_OFFICER = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7';
const RULE_ID = `/subscriptions/${SUB}/resourceGroups/rg-kvr/providers/Microsoft.EventHub/namespaces/ns/authorizationRules/send`;

async function failure(call: Promise<unknown>): Promise<{ name?: string; statusCode?: number; code?: string }> {
    try {
        await call;
    } catch (e) {
        return e as { name?: string; statusCode?: number; code?: string };
    }
    throw new Error('expected the call to fail');
}

describe('role assignments and diagnostic settings in the ARM simulator', () => {
    let fake: ArmKeyVaultFake;
    let access: ArmAccessRoutes;

    beforeEach(async () => {
        access = armAccessRoutes();
        fake = await startArmKeyVaultFake({
            vaults: [makeVault({ subscriptionId: SUB, resourceGroup: RG, name: 'kv-rbac' })],
            providerRoutes: [access.route],
        });
    });
    afterEach(async () => {
        await fake.close();
    });

    it('serves the SDK: create by id, get by id, list at scope (atScope and principalId filters), delete by id', async () => {
        const client = authorizationClientFor(fake);
        const id = `${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/0b7f1a10-1f7e-4bd8-9a58-1c2a1e9d0c11`;
        const created = await client.roleAssignments.createById(id, {
            roleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${SECRETS_OFFICER}`,
            principalId: USER,
            principalType: 'User',
        });
        expect(created).toMatchObject({ id, scope: RG_SCOPE, principalId: USER, principalType: 'User' });
        expect(fake.requests.at(-1)).toMatchObject({ method: 'PUT', apiVersion: '2022-04-01', status: 201 });
        expect(await client.roleAssignments.getById(id)).toMatchObject({ id, principalId: USER });

        const atVault: string[] = [];
        for await (const a of client.roleAssignments.listForScope(VAULT_ID, { filter: 'atScope()' }))
            atVault.push(a.id ?? '');
        expect(atVault).toEqual([id]);
        // At the subscription: the resource-group assignment is below, not at or above.
        const atSub: string[] = [];
        for await (const a of client.roleAssignments.listForScope(`/subscriptions/${SUB}`, { filter: 'atScope()' }))
            atSub.push(a.id ?? '');
        expect(atSub).toEqual([]);
        const forPrincipal: string[] = [];
        for await (const a of client.roleAssignments.listForScope(`/subscriptions/${SUB}`, {
            filter: `principalId eq '${USER}'`,
        }))
            forPrincipal.push(a.id ?? '');
        expect(forPrincipal).toEqual([id]);

        await client.roleAssignments.deleteById(id);
        expect(access.roleAssignment(id)).toBeUndefined();
        // Deleting again: 204, "already deleted or does not exist", which the SDK returns as success.
        await client.roleAssignments.deleteById(id);
        expect(fake.requests.at(-1)).toMatchObject({ method: 'DELETE', status: 204 });
        expect(await failure(client.roleAssignments.getById(id))).toMatchObject({
            statusCode: 404,
            code: 'RoleAssignmentNotFound',
        });
        expect(fake.invalidRequests).toEqual([]);
    });

    it('refuses what the real API refuses: a name that is not a GUID, a changed principal, a duplicate', async () => {
        const client = authorizationClientFor(fake);
        const role = `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${SECRETS_OFFICER}`;
        expect(
            await failure(
                client.roleAssignments.createById(`${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/x`, {
                    roleDefinitionId: role,
                    principalId: USER,
                }),
            ),
        ).toMatchObject({ statusCode: 400 });
        const id = access.putRoleAssignment({
            scope: RG_SCOPE,
            roleDefinitionGuid: SECRETS_OFFICER,
            principalId: USER,
        });
        expect(
            await failure(
                client.roleAssignments.createById(id, {
                    roleDefinitionId: role,
                    principalId: '99999999-2222-3333-4444-555555555555',
                }),
            ),
        ).toMatchObject({ statusCode: 400, code: 'RoleAssignmentUpdateNotPermitted' });
        expect(
            await failure(
                client.roleAssignments.createById(
                    `${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/2b7f1a10-1f7e-4bd8-9a58-1c2a1e9d0c11`,
                    { roleDefinitionId: role, principalId: USER },
                ),
            ),
        ).toMatchObject({ statusCode: 409, code: 'RoleAssignmentExists' });
    });

    it('ArmAccessAdmin reads and deletes an assignment; a person re-creates it exactly (role, principal, type, scope)', async () => {
        const admin = accessAdminFor(fake);
        const id = access.putRoleAssignment({
            scope: RG_SCOPE,
            roleDefinitionGuid: SECRETS_OFFICER,
            principalId: USER,
            principalType: 'ServicePrincipal',
        });
        const before = await admin.getRoleAssignment(id);
        expect(before).toMatchObject({ id, scope: RG_SCOPE, principalId: USER, principalType: 'ServicePrincipal' });
        await admin.deleteRoleAssignment(id);
        expect(await admin.getRoleAssignment(id)).toBeUndefined();
        // The responder holds no roleAssignments/write: a manual undo is `az role assignment create`, which sends the
        // same RoleAssignments_Create PUT as the SDK client here (with the person's own token).
        await authorizationClientFor(fake).roleAssignments.createById(id, {
            roleDefinitionId: before!.roleDefinitionId,
            principalId: before!.principalId,
            principalType: before!.principalType as 'ServicePrincipal',
        });
        expect(access.roleAssignment(id)?.properties).toMatchObject({
            scope: RG_SCOPE,
            principalId: USER,
            principalType: 'ServicePrincipal',
            roleDefinitionId: before!.roleDefinitionId,
        });
        await admin.close();
    });

    it('ArmAccessAdmin lists and writes diagnostic settings, validated against the Monitor spec; a person deletes one', async () => {
        const admin = accessAdminFor(fake);
        expect(await admin.listDiagnosticSettings(VAULT_ID)).toEqual([]);
        await admin.putDiagnosticSetting(VAULT_ID, 'kv-responder', {
            eventHubAuthorizationRuleId: RULE_ID,
            logs: [{ category: 'AuditEvent', enabled: true }],
            metrics: [{ category: 'AllMetrics', enabled: false }],
        });
        expect(fake.requests.at(-1)).toMatchObject({ method: 'PUT', apiVersion: '2021-05-01-preview', status: 200 });
        expect(await admin.listDiagnosticSettings(VAULT_ID)).toEqual([
            {
                name: 'kv-responder',
                properties: {
                    eventHubAuthorizationRuleId: RULE_ID,
                    logs: [{ category: 'AuditEvent', enabled: true }],
                    metrics: [{ category: 'AllMetrics', enabled: false }],
                },
            },
        ]);
        // A setting without a destination is refused (400) and listed as invalid.
        expect(
            await failure(
                admin.putDiagnosticSetting(VAULT_ID, 'nowhere', { logs: [{ category: 'AuditEvent', enabled: true }] }),
            ),
        ).toMatchObject({ statusCode: 400 });
        expect(fake.invalidRequests).toHaveLength(1);
        // The responder holds no diagnosticSettings/delete: `az monitor diagnostic-settings delete` sends this DELETE.
        const url = new URL(
            `${fake.url}${VAULT_ID}/providers/Microsoft.Insights/diagnosticSettings/kv-responder?api-version=2021-05-01-preview`,
        );
        expect((await rawHttps(url, fake.caPem, 'DELETE', { authorization: 'Bearer person' })).status).toBe(200);
        expect(access.diagnosticSettings(VAULT_ID)).toEqual([]);
        await admin.close();
    });

    describe('fault classes, as the callers see them', () => {
        it.each([400, 401, 403, 404, 409, 429, 500, 503] as const)(
            'status %s on a role-assignment delete and on a diagnostic-setting write: statusCode kept, nothing changed',
            async (status) => {
                const admin = accessAdminFor(fake);
                const id = access.putRoleAssignment({
                    scope: RG_SCOPE,
                    roleDefinitionGuid: SECRETS_OFFICER,
                    principalId: USER,
                });
                fake.inject({ status, match: { method: 'DELETE', pathIncludes: 'roleAssignments' } });
                const a = await failure(admin.deleteRoleAssignment(id));
                expect(statusOf(a)).toBe(status);
                expect(isTransient(a)).toBe(status === 429 || status >= 500);
                expect(access.roleAssignment(id)).toBeDefined();

                fake.inject({ status, match: { method: 'PUT', pathIncludes: 'diagnosticSettings' } });
                const d = await failure(
                    admin.putDiagnosticSetting(VAULT_ID, 'kv-responder', {
                        eventHubAuthorizationRuleId: RULE_ID,
                        logs: [{ category: 'AuditEvent', enabled: true }],
                    }),
                );
                expect(statusOf(d)).toBe(status);
                expect(isTransient(d)).toBe(status === 429 || status >= 500);
                expect(access.diagnosticSettings(VAULT_ID)).toEqual([]);
                await admin.close();
            },
        );

        it('a reset after the delete applied: a transient error, and the assignment is gone', async () => {
            const admin = accessAdminFor(fake);
            const id = access.putRoleAssignment({
                scope: RG_SCOPE,
                roleDefinitionGuid: SECRETS_OFFICER,
                principalId: USER,
            });
            fake.inject({ reset: true, applied: true, match: { method: 'DELETE' } });
            const err = await failure(admin.deleteRoleAssignment(id));
            expect(isTransient(err)).toBe(true);
            expect(access.roleAssignment(id)).toBeUndefined();
            fake.inject({ reset: true, match: { method: 'PUT', pathIncludes: 'diagnosticSettings' } });
            const d = await failure(
                admin.putDiagnosticSetting(VAULT_ID, 'kv-responder', {
                    eventHubAuthorizationRuleId: RULE_ID,
                    logs: [{ category: 'AuditEvent', enabled: true }],
                }),
            );
            expect(isTransient(d)).toBe(true);
            await admin.close();
        });

        it('a hang ends at the per-call time limit as a transient error, for both', async () => {
            const admin = accessAdminFor(fake, 200);
            const id = access.putRoleAssignment({
                scope: RG_SCOPE,
                roleDefinitionGuid: SECRETS_OFFICER,
                principalId: USER,
            });
            fake.inject({ hang: true, match: { method: 'GET', pathIncludes: 'roleAssignments' } });
            expect(isTransient(await failure(admin.getRoleAssignment(id)))).toBe(true);
            fake.inject({ hang: true, match: { method: 'GET', pathIncludes: 'diagnosticSettings' } });
            expect(isTransient(await failure(admin.listDiagnosticSettings(VAULT_ID)))).toBe(true);
            await admin.close();
        });
    });
});
