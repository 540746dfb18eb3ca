// Every injectable ARM fault class, as the real @azure/arm-keyvault client surfaces it. The reconcile worker branches
// on exactly these (name, statusCode, code): see the table at the top of the fault section of armSimulator.ts.
import { StubTokenCredential, armClientFor } from '../fakes/armClient';
import {
    type ArmFault,
    type ArmFaultStatus,
    type ArmKeyVaultFake,
    makeVault,
    startArmKeyVaultFake,
} from '../../shared/simulation/armSimulator';

const SUB = '00000000-0000-0000-0000-000000000001';
const RG = 'rg-kv';
const TENANT = '00000000-0000-0000-0000-0000000000aa';
const VAULT = 'kv-faults';
/** As shared/app/compositionRoot.ts builds the client: the SDK's own retries off. */
const NO_RETRIES = { maxRetries: 0 };
/** The SDK's default retry policy, with short delays. */
const FAST_RETRIES = { maxRetries: 3, retryDelayInMs: 1, maxRetryDelayInMs: 5 };

interface Surfaced {
    name?: string;
    statusCode?: number;
    code?: string;
    details?: { error?: { code?: string; message?: string } };
    response?: { headers: { get(name: string): string | undefined } };
}

async function failure(call: Promise<unknown>): Promise<Surfaced> {
    try {
        await call;
    } catch (e) {
        return e as Surfaced;
    }
    throw new Error('expected the call to fail');
}

const OPEN_FIREWALL = { properties: { networkAcls: { defaultAction: 'Allow' as const } } };

describe('ARM faults through the real @azure/arm-keyvault client', () => {
    let fake: ArmKeyVaultFake;

    beforeEach(async () => {
        fake = await startArmKeyVaultFake({
            vaults: [
                makeVault({
                    subscriptionId: SUB,
                    resourceGroup: RG,
                    name: VAULT,
                    tenantId: TENANT,
                    properties: { networkAcls: { defaultAction: 'Deny', bypass: 'AzureServices' } },
                }),
            ],
        });
    });
    afterEach(async () => {
        await fake.close();
    });

    const client = (retryOptions: typeof NO_RETRIES | typeof FAST_RETRIES = NO_RETRIES) =>
        armClientFor(fake, SUB, { retryOptions });

    describe('status faults: RestError with the status and the CloudError code, and no change', () => {
        it.each<[ArmFaultStatus, string]>([
            [400, 'BadRequest'],
            [401, 'InvalidAuthenticationToken'],
            [403, 'AuthorizationFailed'],
            [404, 'ResourceNotFound'],
            [408, 'RequestTimeout'],
            [409, 'Conflict'],
            [412, 'PreconditionFailed'],
            [429, 'TooManyRequests'],
            [500, 'InternalServerError'],
            [502, 'BadGateway'],
            [503, 'ServiceUnavailable'],
            [504, 'GatewayTimeout'],
        ])('%s surfaces as RestError %s', async (status, code) => {
            fake.inject({ status, match: { method: 'PATCH' } });
            const err = await failure(client().vaults.update(RG, VAULT, OPEN_FIREWALL));
            expect(err).toMatchObject({ name: 'RestError', statusCode: status, code });
            expect(err.details?.error?.code).toBe(code);
            expect(err.details?.error?.message).toEqual(expect.any(String));
            expect(fake.requests.map((r) => r.status)).toEqual([status]);
            expect(fake.requests[0]?.applied).toBeUndefined();
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        });

        it('401 carries a Bearer invalid_token challenge, and the SDK does not retry it with a new token', async () => {
            const credential = new StubTokenCredential();
            fake.inject({ status: 401 });
            const err = await failure(
                armClientFor(fake, SUB, { credential, retryOptions: FAST_RETRIES }).vaults.get(RG, VAULT),
            );
            expect(err).toMatchObject({ statusCode: 401, code: 'InvalidAuthenticationToken' });
            expect(err.response?.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
            expect(fake.requests).toHaveLength(1);
            expect(credential.requestedScopes).toHaveLength(1);
        });

        it('409 ScopeLocked (a resource lock) carries ARM’s lock message', async () => {
            fake.inject({ status: 409, code: 'ScopeLocked' });
            const err = await failure(client().vaults.update(RG, VAULT, OPEN_FIREWALL));
            expect(err).toMatchObject({ statusCode: 409, code: 'ScopeLocked' });
            expect(err.details?.error?.message).toMatch(/cannot perform write operation because .* locked/);
        });

        it('429 with Retry-After is ARM’s subscription throttling, with the header', async () => {
            fake.inject({ status: 429, retryAfterSeconds: 7 });
            const err = await failure(client().vaults.get(RG, VAULT));
            expect(err).toMatchObject({ statusCode: 429, code: 'SubscriptionRequestsThrottled' });
            expect(err.response?.headers.get('retry-after')).toBe('7');
        });

        it('code and message can be overridden (e.g. a 400 the provider words its own way)', async () => {
            fake.inject({ status: 400, code: 'InvalidRequestContent', message: 'no' });
            const err = await failure(client().vaults.get(RG, VAULT));
            expect(err).toMatchObject({ statusCode: 400, code: 'InvalidRequestContent' });
            expect(err.details?.error?.message).toBe('no');
        });
    });

    describe('which faults the SDK retries by itself (default retry policy)', () => {
        it.each<[ArmFault, boolean]>([
            [{ status: 408 }, true],
            [{ status: 500 }, true],
            [{ status: 502 }, true],
            [{ status: 503 }, true],
            [{ status: 504 }, true],
            [{ status: 429, retryAfterSeconds: 0 }, true],
            [{ status: 503, retryAfterSeconds: 0 }, true],
            [{ reset: true }, true],
            [{ status: 429 }, false],
            [{ status: 400 }, false],
            [{ status: 403 }, false],
            [{ status: 404 }, false],
            [{ status: 409 }, false],
            [{ status: 412 }, false],
        ])('%j retried: %s', async (fault, retried) => {
            fake.inject(fault);
            const call = client(FAST_RETRIES).vaults.get(RG, VAULT);
            if (retried) {
                await expect(call).resolves.toMatchObject({ name: VAULT });
                expect(fake.requests).toHaveLength(2);
            } else {
                await expect(call).rejects.toMatchObject({ name: 'RestError' });
                expect(fake.requests).toHaveLength(1);
            }
        });
    });

    describe('connection resets', () => {
        it('before the provider applied the change: RestError ECONNRESET without a status, nothing changed', async () => {
            fake.inject({ reset: true, match: { method: 'PATCH' } });
            const err = await failure(client().vaults.update(RG, VAULT, OPEN_FIREWALL));
            expect(err).toMatchObject({ name: 'RestError', code: 'ECONNRESET' });
            expect(err.statusCode).toBeUndefined();
            expect(fake.requests[0]).toMatchObject({ status: 0, fault: { reset: true } });
            expect(fake.requests[0]?.applied).toBeUndefined();
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        });

        it('after the provider applied the change: the same error, but the change is there', async () => {
            fake.inject({ reset: true, applied: true, match: { method: 'PATCH' } });
            const err = await failure(client().vaults.update(RG, VAULT, OPEN_FIREWALL));
            expect(err).toMatchObject({ name: 'RestError', code: 'ECONNRESET' });
            expect(err.statusCode).toBeUndefined();
            expect(fake.requests[0]).toMatchObject({ status: 0, applied: true });
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
            // A read afterwards tells the truth.
            const read = await client().vaults.get(RG, VAULT);
            expect(read.properties.networkAcls?.defaultAction).toBe('Allow');
        });

        it('mid-body (status and half the answer sent): RestError PARSE_ERROR, which the SDK does not retry', async () => {
            fake.inject({ reset: true, midBody: true, match: { method: 'PATCH' } });
            const err = await failure(client(FAST_RETRIES).vaults.update(RG, VAULT, OPEN_FIREWALL));
            expect(err).toMatchObject({ name: 'RestError', code: 'PARSE_ERROR' });
            expect(err.statusCode).toBeUndefined();
            expect(fake.requests).toHaveLength(1);
            expect(fake.requests[0]).toMatchObject({ status: 200, applied: true });
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        });

        it('with the SDK’s own retries on, an applied-then-reset PATCH is silently sent twice', async () => {
            fake.inject({ reset: true, applied: true, match: { method: 'PATCH' } });
            await client(FAST_RETRIES).vaults.update(RG, VAULT, { tags: { n: '1' } });
            expect(fake.requests.map((r) => [r.method, r.status, r.applied])).toEqual([
                ['PATCH', 0, true],
                ['PATCH', 200, true],
            ]);
        });
    });

    describe('hung and slow answers', () => {
        it('a hung request ends in AbortError when the caller’s timeout fires; nothing changed', async () => {
            fake.inject({ hang: true, match: { method: 'PATCH' } });
            const err = await failure(
                client().vaults.update(RG, VAULT, OPEN_FIREWALL, { abortSignal: AbortSignal.timeout(200) }),
            );
            expect(err.name).toBe('AbortError');
            expect(err.statusCode).toBeUndefined();
            expect(err.code).toBeUndefined();
            expect(fake.requests[0]?.status).toBe(0);
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        });

        it('a hung request after the change was applied: AbortError, and the change is there', async () => {
            fake.inject({ hang: true, applied: true, match: { method: 'PATCH' } });
            const err = await failure(
                client().vaults.update(RG, VAULT, OPEN_FIREWALL, { abortSignal: AbortSignal.timeout(200) }),
            );
            expect(err.name).toBe('AbortError');
            expect(fake.requests[0]).toMatchObject({ status: 0, applied: true });
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        });

        it('the SDK does not retry an aborted call', async () => {
            fake.inject({ hang: true });
            await failure(client(FAST_RETRIES).vaults.get(RG, VAULT, { abortSignal: AbortSignal.timeout(200) }));
            expect(fake.requests).toHaveLength(1);
        });

        it('a slow answer within the caller’s timeout arrives, with the change applied', async () => {
            fake.inject({ delayMs: 150, match: { method: 'PATCH' } });
            const updated = await client().vaults.update(RG, VAULT, OPEN_FIREWALL, {
                abortSignal: AbortSignal.timeout(10_000),
            });
            expect(updated.properties.networkAcls?.defaultAction).toBe('Allow');
            expect(fake.requests[0]).toMatchObject({ status: 200, fault: { delayMs: 150 } });
        });

        it('a slow answer past the caller’s timeout: AbortError, but the change lands afterwards', async () => {
            fake.inject({ delayMs: 300, match: { method: 'PATCH' } });
            const err = await failure(
                client().vaults.update(RG, VAULT, OPEN_FIREWALL, { abortSignal: AbortSignal.timeout(50) }),
            );
            expect(err.name).toBe('AbortError');
            await new Promise((resolve) => setTimeout(resolve, 500));
            expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        });
    });

    describe('a vault deleted meanwhile', () => {
        it('deleteVault(): later reads and writes answer 404 ResourceNotFound, like the real API', async () => {
            const c = client();
            await c.vaults.get(RG, VAULT);
            expect(fake.deleteVault(VAULT)).toBe(true);
            for (const call of [
                c.vaults.get(RG, VAULT),
                c.vaults.update(RG, VAULT, OPEN_FIREWALL),
                c.vaults.updateAccessPolicy(RG, VAULT, 'remove', {
                    properties: {
                        accessPolicies: [{ tenantId: TENANT, objectId: 'x', permissions: { keys: ['get'] } }],
                    },
                }),
            ]) {
                const err = await failure(call);
                expect(err).toMatchObject({ name: 'RestError', statusCode: 404, code: 'ResourceNotFound' });
            }
            expect(() => fake.vault(VAULT)).toThrow(/no vault/);
            expect(fake.deleteVault(VAULT)).toBe(false);
        });

        it('Vaults_Delete through the SDK removes the vault (200), and a second delete answers 204', async () => {
            const c = client();
            await c.vaults.delete(RG, VAULT);
            await c.vaults.delete(RG, VAULT);
            expect(fake.requests.map((r) => [r.method, r.status])).toEqual([
                ['DELETE', 200],
                ['DELETE', 204],
            ]);
            expect(await failure(c.vaults.get(RG, VAULT))).toMatchObject({ statusCode: 404 });
        });
    });

    describe('2026-02-01 semantics', () => {
        it('a vault created without enableRbacAuthorization uses Azure RBAC (the spec default)', async () => {
            const created = await client().vaults.createOrUpdate(RG, 'kv-new', {
                location: 'westeurope',
                properties: { tenantId: TENANT, sku: { family: 'A', name: 'standard' } },
            });
            expect(created.properties.enableRbacAuthorization).toBe(true);
            expect(created.properties.enableSoftDelete).toBe(true);
            expect(created.properties.softDeleteRetentionInDays).toBe(90);
            expect(fake.vault('kv-new').properties.enableRbacAuthorization).toBe(true);
            expect(fake.requests.map((r) => [r.method, r.apiVersion, r.status])).toEqual([['PUT', '2026-02-01', 201]]);
        });

        it('a vault created with enableRbacAuthorization: false uses access policies', async () => {
            await client().vaults.createOrUpdate(RG, 'kv-ap', {
                location: 'westeurope',
                properties: {
                    tenantId: TENANT,
                    sku: { family: 'A', name: 'standard' },
                    enableRbacAuthorization: false,
                    accessPolicies: [{ tenantId: TENANT, objectId: 'o', permissions: { secrets: ['get'] } }],
                },
            });
            expect(fake.vault('kv-ap').properties).toMatchObject({
                enableRbacAuthorization: false,
                accessPolicies: [{ tenantId: TENANT, objectId: 'o', permissions: { secrets: ['get'] } }],
            });
        });

        it('an existing access-policy vault keeps its model when a PUT or PATCH leaves the switch out', async () => {
            const c = client();
            expect(fake.vault(VAULT).properties.enableRbacAuthorization).toBe(false);
            await c.vaults.update(RG, VAULT, { properties: { enabledForDeployment: true } });
            await c.vaults.createOrUpdate(RG, VAULT, {
                location: 'westeurope',
                properties: { tenantId: TENANT, sku: { family: 'A', name: 'standard' } },
            });
            expect(fake.vault(VAULT).properties.enableRbacAuthorization).toBe(false);
        });
    });
});
