import { MAX_FIELD_CHARS, RecordNormalizer, stripPort, targetOf } from '../../shared/core/events/normalize';
import type { AuditEvent } from '../../shared/core/events/types';
import { fixtureBody, fixtureRecord } from '../support/fixtures';

function normalize(raw: unknown): AuditEvent {
    const r = new RecordNormalizer().normalize(raw);
    if (r.kind !== 'event') throw new Error(`expected an event, got ${r.kind}: ${'reason' in r ? r.reason : ''}`);
    return r.event;
}

function rejectionOf(raw: unknown): string {
    const r = new RecordNormalizer().normalize(raw);
    if (r.kind !== 'rejected') throw new Error(`expected a rejection, got ${r.kind}`);
    return r.reason;
}

const VAULT_ID =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod';

describe('normalizing a data-plane record (short claim names)', () => {
    const e = normalize(fixtureRecord('secret-get-success.json'));

    it('parses the vault from the upper-cased resource id, lower-cased', () => {
        expect(e.vault).toEqual({
            subscriptionId: '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40',
            resourceGroup: 'rg-payments',
            name: 'kv-payments-prod',
            resourceId: VAULT_ID,
        });
    });

    it('reads the caller from oid / appid and the caller IP', () => {
        expect(e.caller).toMatchObject({
            objectId: 'c0c0c0c0-0000-4000-8000-0000000000a1',
            appId: 'a9a9a9a9-0000-4000-8000-0000000000a2',
            ipAddress: '20.50.1.10',
            kind: 'service-principal',
        });
    });

    it('keeps time, operation, status, duration as a number and the target object', () => {
        expect(e.operation).toBe('SecretGet');
        expect(e.time).toBe('2026-10-05T09:30:00.0000000Z');
        expect(e.timeMs).toBe(Date.parse('2026-10-05T09:30:00Z'));
        expect(e.httpStatus).toBe(200);
        expect(e.outcome).toBe('success');
        expect(typeof e.durationMs).toBe('number');
        expect(e.target).toMatchObject({ kind: 'secret', name: 'db-password', deleted: false });
        expect(e.vaultChange).toBeUndefined();
    });
});

describe('normalizing a control-plane record (URI claim names)', () => {
    const e = normalize(fixtureRecord('vault-patch-firewall-allow.json'));

    it('reads object id and UPN from the long claim names', () => {
        expect(e.caller.objectId).toBe('bad0bad0-0000-4000-8000-00000000000d');
        expect(e.caller.upn).toBe('mallory@contoso.example');
        expect(e.caller.appId).toBe('04b07795-8ddb-461a-bbee-02f9e1bf7b46');
        expect(e.caller.kind).toBe('user');
    });

    it('keeps the recorded after-state of the vault', () => {
        expect(e.vaultChange?.networkAcls).toEqual({
            defaultAction: 'Allow',
            bypass: 'AzureServices',
            ipRules: undefined,
            virtualNetworkRules: undefined,
        });
        expect(e.vaultChange?.enableRbacAuthorization).toBe(false);
        expect(e.target?.kind).toBe('vault');
    });

    it('treats "networkAcls": null as an explicit absence of rules', () => {
        const raw = fixtureRecord('vault-get-resource-graph.json');
        (
            (raw.properties as Record<string, Record<string, unknown>>).properties as Record<string, unknown>
        ).networkAcls = null;
        expect(normalize(raw).vaultChange?.networkAcls).toBeNull();
    });
});

describe('outcome comes from the HTTP status, never resultType', () => {
    it('reads 403 as forbidden although resultType says Success', () => {
        const raw = fixtureRecord('secret-get-forbidden.json');
        expect(raw.resultType).toBe('Success');
        const e = normalize(raw);
        expect(e.httpStatus).toBe(403);
        expect(e.outcome).toBe('forbidden');
    });

    it.each([
        ['Not Found', 404, 'not-found'],
        ['Conflict', 409, 'conflict'],
        ['TooManyRequests', 429, 'throttled'],
        ['Unauthorized', 401, 'unauthorized'],
        ['Bad Request', 400, 'client-error'],
        ['Accepted', 202, 'success'],
        ['InternalServerError', 500, 'server-error'],
    ])('falls back to resultSignature %s when httpStatusCode is absent', (signature, status, outcome) => {
        const raw = fixtureRecord('secret-get-success.json');
        delete (raw.properties as Record<string, unknown>).httpStatusCode;
        raw.resultSignature = signature;
        const e = normalize(raw);
        expect(e.httpStatus).toBe(status);
        expect(e.outcome).toBe(outcome);
    });

    it('is unknown when neither status nor signature is there', () => {
        const raw = fixtureRecord('secret-get-success.json');
        delete (raw.properties as Record<string, unknown>).httpStatusCode;
        delete raw.resultSignature;
        expect(normalize(raw).outcome).toBe('unknown');
    });
});

describe('caller identities', () => {
    it('recognises a managed identity by xms_mirid', () => {
        const e = normalize(fixtureRecord('key-unwrap-forbidden-storage-cmk.json'));
        expect(e.caller.kind).toBe('managed-identity');
        expect(e.caller.managedIdentityResourceId).toBe(
            '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.storage/storageaccounts/stpaymentsprod',
        );
        expect(e.target).toMatchObject({
            kind: 'key',
            name: 'cmk-storage',
            version: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
        });
    });

    it('recognises a trusted service with no token claims', () => {
        const raw = fixtureRecord('secret-get-success.json');
        delete raw.identity;
        (raw.properties as Record<string, unknown>).trustedService = 'Microsoft.Web';
        const e = normalize(raw);
        expect(e.caller.kind).toBe('trusted-service');
        expect(e.caller.trustedService).toBe('Microsoft.Web');
    });

    it('treats a record without identity as anonymous (Authentication 401 noise)', () => {
        const raw = fixtureBody('multi-record-mixed.json').records[2] as Record<string, unknown>;
        delete raw.identity;
        expect(normalize(raw).caller.kind).toBe('anonymous');
    });

    it('falls back to the ipaddr claim and strips ports', () => {
        const raw = fixtureRecord('secret-get-forbidden.json');
        delete raw.callerIpAddress;
        expect(normalize(raw).caller.ipAddress).toBe((raw.identity as { claim: { ipaddr: string } }).claim.ipaddr);
        expect(stripPort('10.0.0.4:51000')).toBe('10.0.0.4');
        expect(stripPort('[2001:db8::1]:443')).toBe('2001:db8::1');
        expect(stripPort('2001:db8::1')).toBe('2001:db8::1');
    });

    it('parses an identity given as a JSON string (managed HSM shape)', () => {
        const raw = fixtureRecord('secret-get-success.json');
        raw.identity = JSON.stringify(raw.identity);
        expect(normalize(raw).caller.objectId).toBe('c0c0c0c0-0000-4000-8000-0000000000a1');
    });
});

describe('vault changes (inferred fields parsed defensively)', () => {
    it('reads an added access policy', () => {
        const e = normalize(fixtureRecord('vault-patch-access-policy-added.json'));
        expect(e.vaultChange?.addedAccessPolicies).toEqual([
            {
                tenantId: '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11',
                objectId: 'bad0bad0-0000-4000-8000-00000000000d',
                applicationId: undefined,
                permissions: { keys: ['get'], secrets: ['get', 'list'], certificates: [], storage: [] },
            },
        ]);
        expect(e.vaultChange?.removedAccessPolicies).toEqual([]);
    });

    it('reads a removed access policy', () => {
        const e = normalize(fixtureRecord('vault-patch-access-policy-removed.json'));
        expect(e.vaultChange?.removedAccessPolicies.map((p) => p.objectId)).toEqual([
            'bad0bad0-0000-4000-8000-00000000000d',
        ]);
    });

    it('reads an added IP rule', () => {
        expect(normalize(fixtureRecord('vault-patch-ip-rule-added.json')).vaultChange?.addedIpRules).toEqual([
            '203.0.113.66/32',
        ]);
    });

    it('accepts other casings, arrays and JSON strings', () => {
        const raw = fixtureRecord('vault-patch-ip-rule-added.json');
        const p = raw.properties as Record<string, unknown>;
        delete p.addedIpRule;
        p.AddedIpRules = JSON.stringify([{ value: '198.51.100.0/24' }, '198.51.100.7']);
        p.addedaccesspolicy = JSON.stringify({
            objectid: 'ABCDEF00-0000-4000-8000-000000000001',
            permissions: { Secrets: '["Get","List"]' },
        });
        p.removedVirtualNetworkRule = { Id: '/SUBSCRIPTIONS/X/SUBNETS/A' };
        const change = normalize(raw).vaultChange;
        expect(change?.addedIpRules).toEqual(['198.51.100.0/24', '198.51.100.7']);
        expect(change?.addedAccessPolicies[0]?.objectId).toBe('abcdef00-0000-4000-8000-000000000001');
        expect(change?.addedAccessPolicies[0]?.permissions.secrets).toEqual(['get', 'list']);
        expect(change?.removedVirtualNetworkRules).toEqual(['/subscriptions/x/subnets/a']);
    });

    it('reads publicNetworkAccess and RBAC switches', () => {
        expect(
            normalize(fixtureRecord('vault-patch-public-network-enabled.json')).vaultChange?.publicNetworkAccess,
        ).toBe('Enabled');
        expect(normalize(fixtureRecord('vault-patch-rbac-disabled.json')).vaultChange?.enableRbacAuthorization).toBe(
            false,
        );
    });

    it('ignores garbage in inferred fields instead of throwing', () => {
        const raw = fixtureRecord('vault-patch-ip-rule-added.json');
        const p = raw.properties as Record<string, unknown>;
        p.addedIpRule = 42;
        p.addedAccessPolicy = '{not json';
        (p.properties as Record<string, unknown>).networkAcls = 'weird';
        const change = normalize(raw).vaultChange;
        expect(change?.addedIpRules).toEqual([]);
        expect(change?.addedAccessPolicies).toEqual([]);
        expect(change?.networkAcls).toBeUndefined();
    });
});

describe('records that are not Key Vault audit events are skipped and say why', () => {
    it('skips another category', () => {
        const storage = fixtureBody('multi-record-mixed.json').records[1];
        expect(new RecordNormalizer().normalize(storage)).toEqual({ kind: 'skipped', reason: 'other-category' });
    });

    it('skips an AuditEvent of another resource type', () => {
        const raw = fixtureRecord('secret-get-success.json');
        raw.resourceId = '/SUBSCRIPTIONS/X/RESOURCEGROUPS/Y/PROVIDERS/MICROSOFT.KEYVAULT/MANAGEDHSMS/HSM1';
        expect(new RecordNormalizer().normalize(raw)).toEqual({ kind: 'skipped', reason: 'other-resource-type' });
    });

    it('compares category and resource id case-insensitively', () => {
        const raw = fixtureRecord('secret-get-success.json');
        raw.category = 'auditevent';
        raw.resourceId = (raw.resourceId as string).toLowerCase();
        expect(normalize(raw).vault.resourceId).toBe(VAULT_ID);
    });
});

describe('bad records are rejected with every problem named', () => {
    it('names all missing required fields at once', () => {
        expect(rejectionOf({ category: 'AuditEvent', operationName: 'SecretGet' })).toBe(
            'resourceId missing; time missing',
        );
    });

    it('names mistyped fields', () => {
        const reason = rejectionOf(fixtureBody('malformed/record-missing-fields.json').records[1]);
        expect(reason).toContain('resourceId not a string');
        expect(reason).toContain('time not an ISO 8601 timestamp');
        expect(reason).toContain('operationName not a non-empty string');
        expect(reason).toContain('identity not an object');
    });

    it('rejects a non-object record', () => {
        expect(rejectionOf('SecretGet')).toBe('record is not an object');
        expect(rejectionOf(null)).toBe('record is not an object');
    });

    it('rejects a malformed vault resource id', () => {
        const raw = fixtureRecord('secret-get-success.json');
        raw.resourceId = '/SUBSCRIPTIONS/X/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/';
        expect(rejectionOf(raw)).toBe('resourceId is not a Key Vault vault id');
    });

    it('rejects a non-numeric status code and a non-object properties', () => {
        const raw = fixtureRecord('secret-get-success.json');
        (raw.properties as Record<string, unknown>).httpStatusCode = 'OK';
        expect(rejectionOf(raw)).toBe('properties.httpStatusCode not a number');
        const raw2 = fixtureRecord('secret-get-success.json');
        raw2.properties = ['x'];
        expect(rejectionOf(raw2)).toBe('properties not an object');
    });

    it('rejects an oversized field', () => {
        const raw = fixtureRecord('secret-get-success.json');
        (raw.properties as Record<string, unknown>).clientInfo = 'x'.repeat(MAX_FIELD_CHARS + 1);
        expect(rejectionOf(raw)).toBe(`properties.clientInfo longer than ${MAX_FIELD_CHARS} characters`);
    });
});

describe('target objects', () => {
    it.each([
        ['https://v.vault.azure.net/', { kind: 'vault', name: undefined }],
        ['https://v.vault.azure.net/secrets', { kind: 'secret', name: undefined }],
        ['https://v.vault.azure.net/deletedkeys/k1', { kind: 'key', name: 'k1', deleted: true }],
        ['https://v.vault.azure.net/certificates/c/abc?x=1', { kind: 'certificate', name: 'c', version: 'abc' }],
        ['https://v.vault.azure.net/weird/x', { kind: 'other', name: 'x' }],
    ])('parses %s', (uri, expected) => {
        expect(targetOf(uri)).toMatchObject(expected);
    });
});
