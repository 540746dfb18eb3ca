// The ARM Key Vault fake honours the REST contract, as seen through the real @azure/arm-keyvault client.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARM_SCOPE, FAKE_ARM_TOKEN, StubTokenCredential, armClientFor } from '../fakes/armClient';
import {
    type AccessPolicyEntry,
    type ArmKeyVaultFake,
    type Vault,
    makeVault,
    startArmKeyVaultFake,
} from '../../shared/simulation/armSimulator';
import { type RawResponse, rawHttps } from '../support/rawHttps';

const SUB = '00000000-0000-0000-0000-000000000001';
const RG = 'rg-kv';
const TENANT = '00000000-0000-0000-0000-0000000000aa';
const ALICE = '11111111-1111-1111-1111-111111111111';
const BOB = '22222222-2222-2222-2222-222222222222';
const VAULT_PATH = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/kv-locked`;
const EXAMPLES = join(
    __dirname,
    '..',
    '..',
    'shared/simulation/spec/specification/keyvault/resource-manager/Microsoft.KeyVault/KeyVault/stable/2026-02-01/examples',
);
const FAST_RETRIES = { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 5 };

function entry(objectId: string, permissions: AccessPolicyEntry['permissions']): AccessPolicyEntry {
    return { tenantId: TENANT, objectId, permissions };
}

function lockedVault() {
    return makeVault({
        subscriptionId: SUB,
        resourceGroup: RG,
        name: 'kv-locked',
        tenantId: TENANT,
        tags: { owner: 'secops' },
        properties: {
            accessPolicies: [
                entry(ALICE, { keys: ['get', 'list'], secrets: ['get'] }),
                entry(BOB, { secrets: ['get'] }),
            ],
            networkAcls: {
                bypass: 'AzureServices',
                defaultAction: 'Deny',
                ipRules: [{ value: '203.0.113.7/32' }, { value: '198.51.100.0/24' }],
                virtualNetworkRules: [
                    {
                        id: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/app`,
                        ignoreMissingVnetServiceEndpoint: false,
                    },
                ],
            },
        },
    });
}

/** A request the SDK's types would not let us send. */
function rawRequest(
    fake: ArmKeyVaultFake,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = { authorization: `Bearer ${FAKE_ARM_TOKEN}` },
): Promise<RawResponse> {
    return rawHttps(new URL(path, fake.url), fake.caPem, method, headers, body);
}

/** The RestError a call rejects with. */
async function restError(call: Promise<unknown>): Promise<{
    name: string;
    statusCode?: number;
    code?: string;
    details?: { error?: { code?: string } };
}> {
    try {
        await call;
    } catch (e) {
        return e as { name: string; statusCode?: number; code?: string };
    }
    throw new Error('expected the call to fail');
}

describe('ARM Key Vault fake with the real @azure/arm-keyvault client', () => {
    let fake: ArmKeyVaultFake;

    beforeEach(async () => {
        fake = await startArmKeyVaultFake({ vaults: [lockedVault()] });
    });
    afterEach(async () => {
        await fake.close();
    });

    describe('Vaults_Get', () => {
        it('returns the vault, and the request carries the bearer token and the SDK api-version', async () => {
            const credential = new StubTokenCredential();
            const vault = await armClientFor(fake, SUB, { credential }).vaults.get(RG, 'kv-locked');
            expect(vault.id).toBe(VAULT_PATH);
            expect(vault.properties.networkAcls?.ipRules).toEqual([
                { value: '203.0.113.7/32' },
                { value: '198.51.100.0/24' },
            ]);
            expect(vault.properties.accessPolicies).toHaveLength(2);
            expect(fake.requests).toEqual([
                expect.objectContaining({
                    method: 'GET',
                    path: VAULT_PATH,
                    apiVersion: '2026-02-01',
                    authorization: `Bearer ${FAKE_ARM_TOKEN}`,
                    status: 200,
                }),
            ]);
            // The token was asked for the real ARM scope, not `${endpoint}/.default`.
            expect(credential.requestedScopes).toEqual([[ARM_SCOPE]]);
        });

        it('matches path segments case-insensitively, as ARM does', async () => {
            const res = await rawRequest(fake, 'GET', `${VAULT_PATH.toLowerCase()}?api-version=2026-02-01`);
            expect(res.status).toBe(200);
            expect(res.body.name).toBe('kv-locked');
        });

        it('answers 404 ResourceNotFound for a vault that does not exist', async () => {
            const err = await restError(armClientFor(fake, SUB).vaults.get(RG, 'kv-missing'));
            expect(err).toMatchObject({ name: 'RestError', statusCode: 404, code: 'ResourceNotFound' });
            expect(err.details?.error?.code).toBe('ResourceNotFound');
            expect(fake.invalidRequests).toEqual([]);
        });
    });

    describe('Vaults_Update (PATCH)', () => {
        it('keeps the ip rules, vnet rules and bypass when the full networkAcls read is sent back', async () => {
            const client = armClientFor(fake, SUB);
            const before = await client.vaults.get(RG, 'kv-locked');
            const acls = before.properties.networkAcls ?? {};
            const updated = await client.vaults.update(RG, 'kv-locked', {
                properties: {
                    networkAcls: {
                        ...acls,
                        ipRules: (acls.ipRules ?? []).filter((r) => r.value !== '198.51.100.0/24'),
                    },
                },
            });
            expect(updated.properties.networkAcls).toEqual({
                bypass: 'AzureServices',
                defaultAction: 'Deny',
                ipRules: [{ value: '203.0.113.7/32' }],
                virtualNetworkRules: acls.virtualNetworkRules,
            });
            // Everything else is untouched.
            const after = fake.vault('kv-locked');
            expect(after.tags).toEqual({ owner: 'secops' });
            expect(after.properties.accessPolicies).toEqual(lockedVault().properties.accessPolicies);
            expect(after.properties.publicNetworkAccess).toBe('Enabled');
            expect(after.systemData?.lastModifiedAt).not.toBe(before.systemData?.lastModifiedAt?.toISOString());
            expect(fake.invalidRequests).toEqual([]);
        });

        it('replaces networkAcls as a whole: a PATCH with only defaultAction drops the ip rules (the gotcha)', async () => {
            await armClientFor(fake, SUB).vaults.update(RG, 'kv-locked', {
                properties: { networkAcls: { defaultAction: 'Deny' } },
            });
            expect(fake.requests.at(-1)?.body).toEqual({ properties: { networkAcls: { defaultAction: 'Deny' } } });
            expect(fake.vault(VAULT_PATH).properties.networkAcls).toEqual({ defaultAction: 'Deny' });
        });

        it('stores a single address as a /32 range, as the service does', async () => {
            await armClientFor(fake, SUB).vaults.update(RG, 'kv-locked', {
                properties: { networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '203.0.113.9' }] } },
            });
            expect(fake.vault('kv-locked').properties.networkAcls?.ipRules).toEqual([{ value: '203.0.113.9/32' }]);
        });

        it('replaces tags and leaves properties alone when only tags are sent', async () => {
            const updated = await armClientFor(fake, SUB).vaults.update(RG, 'kv-locked', {
                tags: { quarantined: 'yes' },
            });
            expect(updated.tags).toEqual({ quarantined: 'yes' });
            expect(fake.vault('kv-locked').properties.networkAcls?.ipRules).toHaveLength(2);
        });

        it('sets publicNetworkAccess, a free string', async () => {
            await armClientFor(fake, SUB).vaults.update(RG, 'kv-locked', {
                properties: { publicNetworkAccess: 'Disabled' },
            });
            expect(fake.vault('kv-locked').properties.publicNetworkAccess).toBe('Disabled');
        });
    });

    describe('Vaults_UpdateAccessPolicy', () => {
        it('add merges permissions into the same holder and appends a new holder', async () => {
            const client = armClientFor(fake, SUB);
            const carol = '33333333-3333-3333-3333-333333333333';
            const result = await client.vaults.updateAccessPolicy(RG, 'kv-locked', 'add', {
                properties: {
                    accessPolicies: [entry(ALICE, { keys: ['get', 'sign'] }), entry(carol, { certificates: ['get'] })],
                },
            });
            expect(result.id).toBe(`${VAULT_PATH}/accessPolicies/add`);
            expect(result.type).toBe('Microsoft.KeyVault/vaults/accessPolicies');
            expect(fake.vault('kv-locked').properties.accessPolicies).toEqual([
                entry(ALICE, { keys: ['get', 'list', 'sign'], secrets: ['get'] }),
                entry(BOB, { secrets: ['get'] }),
                entry(carol, { certificates: ['get'] }),
            ]);
        });

        it('replace sets the holder’s permissions and nobody else’s', async () => {
            await armClientFor(fake, SUB).vaults.updateAccessPolicy(RG, 'kv-locked', 'replace', {
                properties: { accessPolicies: [entry(ALICE, { keys: ['list'] })] },
            });
            expect(fake.vault('kv-locked').properties.accessPolicies).toEqual([
                entry(ALICE, { keys: ['list'] }),
                entry(BOB, { secrets: ['get'] }),
            ]);
        });

        it('remove takes out the listed permissions, and drops an entry left with none', async () => {
            const client = armClientFor(fake, SUB);
            await client.vaults.updateAccessPolicy(RG, 'kv-locked', 'remove', {
                properties: { accessPolicies: [entry(ALICE, { keys: ['list'] })] },
            });
            expect(fake.vault('kv-locked').properties.accessPolicies).toEqual([
                entry(ALICE, { keys: ['get'], secrets: ['get'] }),
                entry(BOB, { secrets: ['get'] }),
            ]);
            // The entry as read, with all its permissions: the entry goes.
            const alice = fake.vault('kv-locked').properties.accessPolicies[0];
            expect(alice).toBeDefined();
            await client.vaults.updateAccessPolicy(RG, 'kv-locked', 'remove', {
                properties: { accessPolicies: alice === undefined ? [] : [alice] },
            });
            expect(fake.vault('kv-locked').properties.accessPolicies).toEqual([entry(BOB, { secrets: ['get'] })]);
            expect(fake.invalidRequests).toEqual([]);
        });

        it('remove matches permission values case-sensitively: other casing is a silent no-op', async () => {
            await armClientFor(fake, SUB).vaults.updateAccessPolicy(RG, 'kv-locked', 'remove', {
                properties: { accessPolicies: [entry(BOB, { secrets: ['Get'] })] },
            });
            expect(fake.requests.at(-1)?.status).toBe(200);
            expect(fake.vault('kv-locked').properties.accessPolicies).toContainEqual(entry(BOB, { secrets: ['get'] }));
        });
    });

    describe('request validation against keyvault.json', () => {
        it.each([
            [
                'defaultAction outside Allow|Deny',
                { properties: { networkAcls: { defaultAction: 'Open' } } },
                /defaultAction/,
            ],
            ['bypass outside AzureServices|None', { properties: { networkAcls: { bypass: 'Everything' } } }, /bypass/],
            ['an IPRule without value', { properties: { networkAcls: { ipRules: [{}] } } }, /'value' is missing/],
            ['an unknown property', { properties: { networkAcls: { ipRule: [] } } }, /'ipRule' is not a property/],
            ['a non-string publicNetworkAccess', { properties: { publicNetworkAccess: false } }, /publicNetworkAccess/],
            ['a read-only VaultProperties field', { properties: { vaultUri: 'https://x' } }, /'vaultUri'/],
            ['an ip rule that is not CIDR', { properties: { networkAcls: { ipRules: [{ value: '1.2.3' }] } } }, /CIDR/],
            ['a private ip range', { properties: { networkAcls: { ipRules: [{ value: '10.1.0.0/16' }] } } }, /private/],
            ['purge protection off', { properties: { enablePurgeProtection: false } }, /irreversible/],
        ])('rejects a PATCH with %s with 400 and lists it', async (_what, body, message) => {
            const before = fake.vault('kv-locked');
            const res = await rawRequest(fake, 'PATCH', `${VAULT_PATH}?api-version=2026-02-01`, body);
            expect(res.status).toBe(400);
            expect(['BadRequest', 'InvalidRequestContent']).toContain(res.body.error?.code);
            expect(res.body.error?.message).toMatch(message);
            expect(fake.invalidRequests).toHaveLength(1);
            expect(fake.invalidRequests[0]).toMatchObject({ method: 'PATCH', body, status: 400 });
            expect(fake.vault('kv-locked')).toEqual(before);
        });

        it.each([
            ['an entry without objectId', { properties: { accessPolicies: [{ tenantId: TENANT, permissions: {} }] } }],
            [
                'a tenantId that is not a GUID',
                { properties: { accessPolicies: [{ ...entry(ALICE, {}), tenantId: 't' }] } },
            ],
            ['an unknown key permission', { properties: { accessPolicies: [entry(ALICE, { keys: ['own'] })] } }],
            ['no properties at all', {}],
        ])('rejects an access policy update with %s', async (_what, body) => {
            const res = await rawRequest(fake, 'PUT', `${VAULT_PATH}/accessPolicies/add?api-version=2026-02-01`, body);
            expect(res.status).toBe(400);
            expect(fake.invalidRequests).toHaveLength(1);
            expect(fake.vault('kv-locked').properties.accessPolicies).toEqual(lockedVault().properties.accessPolicies);
        });

        it('rejects an operationKind outside add|replace|remove', async () => {
            const body = { properties: { accessPolicies: [entry(ALICE, { keys: ['get'] })] } };
            const res = await rawRequest(
                fake,
                'PUT',
                `${VAULT_PATH}/accessPolicies/grant?api-version=2026-02-01`,
                body,
            );
            expect(res.status).toBe(400);
            expect(res.body.error?.message).toMatch(/operationKind/);
        });

        it('accepts the request body of the official 2026-02-01 example and the vault of getVault.json', async () => {
            const example = (name: string) =>
                JSON.parse(readFileSync(join(EXAMPLES, name), 'utf8')) as {
                    parameters: {
                        vaultName: string;
                        resourceGroupName: string;
                        subscriptionId: string;
                        parameters?: unknown;
                    };
                    responses: { 200: { body: Vault } };
                };
            // The documented response is a valid Vault for the fake (setVault validates against the spec).
            const get = example('getVault.json');
            fake.setVault(get.responses[200].body);
            const read = await armClientFor(fake, get.parameters.subscriptionId).vaults.get(
                get.parameters.resourceGroupName,
                get.parameters.vaultName,
            );
            expect(read.properties.accessPolicies).toHaveLength(1);
            const add = example('updateAccessPoliciesAdd.json');
            fake.setVault(
                makeVault({
                    subscriptionId: add.parameters.subscriptionId,
                    resourceGroup: add.parameters.resourceGroupName,
                    name: add.parameters.vaultName,
                    tenantId: '00000000-0000-0000-0000-000000000000',
                }),
            );
            const added = await rawRequest(
                fake,
                'PUT',
                `/subscriptions/${add.parameters.subscriptionId}/resourceGroups/${add.parameters.resourceGroupName}/providers/Microsoft.KeyVault/vaults/${add.parameters.vaultName}/accessPolicies/add?api-version=2026-02-01`,
                add.parameters.parameters,
            );
            expect(added.status).toBe(200);
            expect(fake.invalidRequests).toEqual([]);
        });

        it('refuses an api-version it has no definitions for with 400 NoRegisteredProviderFound, as ARM does', async () => {
            expect(fake.apiVersions).toEqual(['2026-02-01']);
            // 2025-05-01 is a real version, but the fake only validates what the SDK sends.
            const old = await rawRequest(fake, 'GET', `${VAULT_PATH}?api-version=2025-05-01`);
            expect(old.status).toBe(400);
            expect(old.body.error?.code).toBe('NoRegisteredProviderFound');
            expect(old.body.error?.message).toMatch(
                /^No registered resource provider found for location 'westeurope' and API version '2025-05-01' for type 'vaults'\. The supported api-versions are '2026-02-01'\./,
            );
            const err = await restError(
                armClientFor(fake, SUB, { apiVersion: '2099-01-01', retryOptions: { maxRetries: 0 } }).vaults.get(
                    RG,
                    'kv-locked',
                ),
            );
            expect(err).toMatchObject({ name: 'RestError', statusCode: 400, code: 'NoRegisteredProviderFound' });
            expect(fake.requests.map((r) => r.apiVersion)).toEqual(['2025-05-01', '2099-01-01']);
        });

        it('answers 400 MissingApiVersionParameter without api-version', async () => {
            const res = await rawRequest(fake, 'GET', VAULT_PATH);
            expect(res.status).toBe(400);
            expect(res.body.error?.code).toBe('MissingApiVersionParameter');
        });

        it('answers 401 without a bearer token', async () => {
            for (const headers of [{}, { authorization: 'Bearer ' }, { authorization: 'Basic dXNlcjpwdw==' }]) {
                const res = await rawRequest(fake, 'GET', `${VAULT_PATH}?api-version=2026-02-01`, undefined, headers);
                expect(res.status).toBe(401);
                expect(res.body.error?.code).toBe('AuthenticationFailed');
                expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
            }
        });

        it('refuses a Vault that does not match the spec in setVault', () => {
            const bad = lockedVault();
            bad.properties.tenantId = 'not-a-guid';
            expect(() => fake.setVault(bad)).toThrow(/GUID/);
        });
    });

    describe('faults', () => {
        it('429 with Retry-After: 0 is retried by the SDK and succeeds', async () => {
            fake.inject({ status: 429, retryAfterSeconds: 0 });
            const vault = await armClientFor(fake, SUB, { retryOptions: FAST_RETRIES }).vaults.get(RG, 'kv-locked');
            expect(vault.name).toBe('kv-locked');
            expect(fake.requests.map((r) => r.status)).toEqual([429, 200]);
            expect(fake.requests[0]?.fault).toEqual({ status: 429, retryAfterSeconds: 0 });
        });

        it('429 without Retry-After surfaces at once as RestError 429', async () => {
            fake.inject({ status: 429 });
            const err = await restError(
                armClientFor(fake, SUB, { retryOptions: FAST_RETRIES }).vaults.get(RG, 'kv-locked'),
            );
            expect(err).toMatchObject({ name: 'RestError', statusCode: 429, code: 'TooManyRequests' });
            expect(fake.requests).toHaveLength(1);
        });

        it('500 is retried within retryOptions: two failures then success', async () => {
            fake.inject({ status: 500, times: 2 });
            const updated = await armClientFor(fake, SUB, { retryOptions: FAST_RETRIES }).vaults.update(
                RG,
                'kv-locked',
                {
                    tags: { n: '1' },
                },
            );
            expect(updated.tags).toEqual({ n: '1' });
            expect(fake.requests.map((r) => r.status)).toEqual([500, 500, 200]);
        });

        it('500 beyond maxRetries surfaces as RestError 500 and changes nothing', async () => {
            fake.inject({ status: 500, times: 3, match: { method: 'PATCH' } });
            const err = await restError(
                armClientFor(fake, SUB, { retryOptions: FAST_RETRIES }).vaults.update(RG, 'kv-locked', {
                    tags: { n: '1' },
                }),
            );
            expect(err).toMatchObject({ name: 'RestError', statusCode: 500 });
            expect(fake.requests).toHaveLength(3);
            expect(fake.vault('kv-locked').tags).toEqual({ owner: 'secops' });
        });

        it('403 surfaces as RestError 403 with the ARM error code, not retried', async () => {
            fake.inject({ status: 403, match: { pathIncludes: '/accessPolicies/' } });
            const client = armClientFor(fake, SUB, { retryOptions: FAST_RETRIES });
            await client.vaults.get(RG, 'kv-locked'); // not matched
            const err = await restError(
                client.vaults.updateAccessPolicy(RG, 'kv-locked', 'remove', {
                    properties: { accessPolicies: [entry(BOB, { secrets: ['get'] })] },
                }),
            );
            expect(err).toMatchObject({ name: 'RestError', statusCode: 403, code: 'AuthorizationFailed' });
            expect(err.details?.error?.code).toBe('AuthorizationFailed');
            expect(fake.requests.map((r) => r.status)).toEqual([200, 403]);
            expect(fake.pendingFaults()).toBe(0);
            expect(fake.vault('kv-locked').properties.accessPolicies).toHaveLength(2);
        });

        it('a delay fault makes a client with a timeout give up', async () => {
            fake.inject({ delayMs: 1000 });
            const started = Date.now();
            const err = await restError(
                armClientFor(fake, SUB, { retryOptions: { maxRetries: 0 } }).vaults.get(RG, 'kv-locked', {
                    abortSignal: AbortSignal.timeout(100),
                }),
            );
            expect(err.name).toBe('AbortError');
            expect(Date.now() - started).toBeLessThan(900);
        });
    });
});
