// The Key Vault keys fake honours the data-plane contract, as seen through the real @azure/keyvault-keys KeyClient and
// CryptographyClient (vault URL = the fake's URL, test CA per client, challenge-resource verification off).
import { type KeyObject, constants, createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { CryptographyClient, KeyClient, type KeyVaultKey } from '@azure/keyvault-keys';
import type { AccessToken, GetTokenOptions } from '@azure/identity';
import { StubTokenCredential } from '../fakes/armClient';
import {
    KEY_VAULT_SCOPE,
    type KeyVaultKeysFake,
    type KvRecordedRequest,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../../shared/simulation/keyVaultKeysFake';
import { type RawResponse, rawHttps } from '../support/rawHttps';

const NOW = Math.floor(Date.now() / 1000);
const DAY = 24 * 3600;

/** A StubTokenCredential that also records the tenant each token was asked for. */
class RecordingCredential extends StubTokenCredential {
    readonly tenantIds: (string | undefined)[] = [];

    override getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
        this.tenantIds.push(options?.tenantId);
        return super.getToken(scopes);
    }
}

/** A request the SDK would not send as-is (no api-version, a raw query), with the fake's token. */
function rawRequest(fake: KeyVaultKeysFake, method: string, pathAndQuery: string, auth = true): Promise<RawResponse> {
    return rawHttps(
        new URL(pathAndQuery, fake.url),
        fake.caPem,
        method,
        auth ? { authorization: `Bearer ${fake.token}` } : {},
    );
}

/** The error a call rejects with. */
async function failure(call: Promise<unknown>): Promise<{
    name: string;
    statusCode?: number;
    code?: string;
    message: string;
}> {
    try {
        await call;
    } catch (e) {
        return e as { name: string; statusCode?: number; code?: string; message: string };
    }
    throw new Error('expected the call to fail');
}

function b64u(bytes: Uint8Array | undefined): string {
    if (bytes === undefined) throw new Error('missing JWK member');
    return Buffer.from(bytes).toString('base64url');
}

/** The public key in a KeyVaultKey, as a verifier of acknowledgement tokens would rebuild it. */
function publicKeyOf(key: KeyVaultKey): KeyObject {
    const jwk = key.key;
    if (jwk === undefined) throw new Error('no key material');
    if (jwk.kty === 'RSA' || jwk.kty === 'RSA-HSM') {
        return createPublicKey({ key: { kty: 'RSA', n: b64u(jwk.n), e: b64u(jwk.e) }, format: 'jwk' });
    }
    if (jwk.crv === undefined) throw new Error('EC key without a curve');
    return createPublicKey({ key: { kty: 'EC', crv: jwk.crv, x: b64u(jwk.x), y: b64u(jwk.y) }, format: 'jwk' });
}

function versionOf(fake: KeyVaultKeysFake, name: string, index = -1): string {
    const versions = fake.key(name).versions;
    const kid = versions[index < 0 ? versions.length + index : index]?.key.kid ?? '';
    return kid.slice(kid.lastIndexOf('/') + 1);
}

function summary(requests: readonly KvRecordedRequest[]) {
    return requests.map((r) => `${r.method} ${r.path} ${r.status}`);
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
    const out: T[] = [];
    for await (const item of iterable) out.push(item);
    return out;
}

describe('Key Vault keys fake with the real KeyClient and CryptographyClient', () => {
    let fake: KeyVaultKeysFake;
    let credential: RecordingCredential;
    let keys: KeyClient;

    beforeEach(async () => {
        fake = await startKeyVaultKeysFake({ pageSize: 2 });
        credential = new RecordingCredential(fake.token);
        keys = new KeyClient(fake.vaultUrl, credential, keysClientOptionsFor(fake));
    });
    afterEach(async () => {
        await fake.close();
    });

    const cryptoFor = (keyId: string) => new CryptographyClient(keyId, credential, keysClientOptionsFor(fake));

    describe('challenge authentication', () => {
        it('answers an unauthenticated first request with 401 + WWW-Authenticate, then serves the token', async () => {
            await fake.setKey({ name: 'ack-signing' });
            const key = await keys.getKey('ack-signing');

            expect(key.name).toBe('ack-signing');
            expect(fake.requests).toEqual([
                expect.objectContaining({
                    method: 'GET',
                    path: '/keys/ack-signing/',
                    authorization: undefined,
                    body: undefined,
                    status: 401,
                }),
                expect.objectContaining({
                    method: 'GET',
                    path: '/keys/ack-signing/',
                    authorization: `Bearer ${fake.token}`,
                    status: 200,
                }),
            ]);
            // The SDK percent-encodes the query key; the fake decodes it.
            expect(fake.requests[1]?.rawQuery).toBe('api%2Dversion=2025-07-01');
            expect(fake.requests[1]?.apiVersion).toBe('2025-07-01');
            // The credential was asked once, for the challenge's resource and tenant.
            expect(credential.requestedScopes).toEqual([[KEY_VAULT_SCOPE]]);
            expect(credential.tenantIds).toEqual([fake.tenantId]);

            // Later calls on the same client send the cached token up front.
            await keys.getKey('ack-signing');
            expect(fake.requests).toHaveLength(3);
            expect(fake.requests[2]).toMatchObject({ authorization: `Bearer ${fake.token}`, status: 200 });
            expect(credential.requestedScopes).toHaveLength(1);
        });

        it('sends the challenge header and error body the service sends', async () => {
            await fake.setKey({ name: 'ack-signing' });
            const res = await rawRequest(fake, 'GET', '/keys/ack-signing?api-version=7.4', false);
            expect(res.status).toBe(401);
            expect(res.headers['www-authenticate']).toBe(
                `Bearer authorization="https://login.microsoftonline.com/${fake.tenantId}", resource="https://vault.azure.net"`,
            );
            expect(res.body).toEqual({
                error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
            });
        });

        it('rejects a wrong token with 401 Unauthorized after one challenge round', async () => {
            await fake.setKey({ name: 'ack-signing' });
            const thief = new RecordingCredential('stolen-token');
            const client = new KeyClient(fake.vaultUrl, thief, keysClientOptionsFor(fake));

            const err = await failure(client.getKey('ack-signing'));
            expect(err).toMatchObject({ name: 'RestError', statusCode: 401, code: 'Unauthorized' });
            expect(fake.requests.map((r) => [r.authorization, r.status])).toEqual([
                [undefined, 401],
                ['Bearer stolen-token', 401],
            ]);
        });

        it('rejects a missing or unknown api-version with 400 BadParameter, whatever the key spelling', async () => {
            await fake.setKey({ name: 'cmk' });
            const missing = await rawRequest(fake, 'GET', '/keys/cmk');
            expect(missing.status).toBe(400);
            expect(missing.body.error?.code).toBe('BadParameter');
            const unknown = await rawRequest(fake, 'GET', '/keys/cmk?api-version=1999-01-01');
            expect(unknown.status).toBe(400);
            expect(unknown.body.error?.message).toMatch(/^The specified version \(1999-01-01\) is not recognized/);
            const encoded = await rawRequest(fake, 'GET', '/keys/cmk?api%2Dversion=7.4');
            expect(encoded.status).toBe(200);
        });
    });

    describe('getKey', () => {
        it('returns the current version by default and any version by id, public parts only', async () => {
            await fake.setKey({
                name: 'cmk',
                tags: { owner: 'secops' },
                versions: [
                    { freshKey: true, enabled: false, created: NOW - 30 * DAY },
                    { created: NOW - DAY, exp: NOW + 365 * DAY },
                ],
            });
            const v1 = versionOf(fake, 'cmk', 0);
            const v2 = versionOf(fake, 'cmk', 1);

            const current = await keys.getKey('cmk');
            expect(current.id).toBe(`${fake.vaultUrl}/keys/cmk/${v2}`);
            expect(current.properties).toMatchObject({
                version: v2,
                vaultUrl: fake.vaultUrl,
                enabled: true,
                createdOn: new Date((NOW - DAY) * 1000),
                expiresOn: new Date((NOW + 365 * DAY) * 1000),
                recoveryLevel: 'Recoverable+Purgeable',
                recoverableDays: 90,
                tags: { owner: 'secops' },
            });
            expect(current.keyType).toBe('RSA');
            expect(current.keyOperations).toEqual(['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey']);
            expect(current.key?.d).toBeUndefined();

            const old = await keys.getKey('cmk', { version: v1 });
            expect(old.id).toBe(`${fake.vaultUrl}/keys/cmk/${v1}`);
            expect(old.properties.enabled).toBe(false);
            expect(old.properties.expiresOn).toBeUndefined();
            expect(b64u(old.key?.n)).not.toBe(b64u(current.key?.n));
            expect(fake.requests.at(-1)?.path).toBe(`/keys/cmk/${v1}`);

            // The wire bundle: base64url JWK, kid with version, no private member, no tags member when there are none.
            await fake.setKey({ name: 'bare' });
            const raw = await rawRequest(fake, 'GET', '/keys/bare?api-version=7.4');
            expect(raw.status).toBe(200);
            const wireKey = raw.body.key as Record<string, unknown>;
            expect(Object.keys(wireKey).sort()).toEqual(['e', 'key_ops', 'kid', 'kty', 'n']);
            expect(wireKey.kid).toBe(`${fake.vaultUrl}/keys/bare/${versionOf(fake, 'bare')}`);
            expect(wireKey.e).toBe('AQAB');
            expect(raw.body).not.toHaveProperty('tags');
            expect(raw.body.attributes).toEqual({
                enabled: true,
                created: expect.any(Number) as number,
                updated: expect.any(Number) as number,
                recoveryLevel: 'Recoverable+Purgeable',
                recoverableDays: 90,
            });
        });

        it('serves RSA-3072 and EC P-384 keys with the right key sizes', async () => {
            await fake.setKey({ name: 'rsa3072', keySize: 3072 });
            await fake.setKey({ name: 'ec384', kty: 'EC-HSM', curve: 'P-384' });
            const rsa = await keys.getKey('rsa3072');
            expect(rsa.key?.n).toHaveLength(384);
            const ec = await keys.getKey('ec384');
            expect(ec.keyType).toBe('EC-HSM');
            expect(ec.key?.crv).toBe('P-384');
            expect(ec.key?.x).toHaveLength(48);
            expect(ec.keyOperations).toEqual(['sign', 'verify']);
            expect(publicKeyOf(ec).asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
        });

        it('surfaces an unknown key or version as RestError 404 KeyNotFound', async () => {
            await fake.setKey({ name: 'cmk' });
            const err = await failure(keys.getKey('nope'));
            expect(err).toMatchObject({ name: 'RestError', statusCode: 404, code: 'KeyNotFound' });
            expect(err.message).toMatch(/^A key with \(name\/id\) nope was not found in this key vault\./);
            const badVersion = await failure(keys.getKey('cmk', { version: 'f'.repeat(32) }));
            expect(badVersion).toMatchObject({ statusCode: 404, code: 'KeyNotFound' });
        });
    });

    describe('listing', () => {
        it('listPropertiesOfKeys follows nextLink across pages and reports each key by its current version', async () => {
            await fake.setKey({ name: 'kek-storage', exp: NOW + 30 * DAY, tags: { cmk: 'storage' } });
            await fake.setKey({ name: 'ack-signing' });
            await fake.setKey({ name: 'cert-backed', managed: true });
            await fake.setKey({ name: 'Disk-Key', versions: [{}, { enabled: false }] });
            await fake.setKey({ name: 'ec-key', kty: 'EC' });

            const all = await collect(keys.listPropertiesOfKeys());
            expect(all.map((k) => k.name)).toEqual(['ack-signing', 'cert-backed', 'Disk-Key', 'ec-key', 'kek-storage']);
            // Items name the key, not a version.
            expect(all.map((k) => k.id)).toEqual(all.map((k) => `${fake.vaultUrl}/keys/${k.name}`));
            expect(all.every((k) => k.version === undefined)).toBe(true);
            const byName = new Map(all.map((k) => [k.name, k]));
            expect(byName.get('kek-storage')).toMatchObject({
                enabled: true,
                expiresOn: new Date((NOW + 30 * DAY) * 1000),
                tags: { cmk: 'storage' },
            });
            expect(byName.get('cert-backed')?.managed).toBe(true);
            expect(byName.get('Disk-Key')?.enabled).toBe(false);

            // Three pages of at most 2, each after the first asked for with the nextLink's $skiptoken.
            const lists = fake.requests.filter((r) => r.path === '/keys' && r.status === 200);
            expect(lists).toHaveLength(3);
            expect(lists[0]?.query).toEqual({ 'api-version': '2025-07-01' });
            expect(lists[1]?.query['$skiptoken']).toEqual(expect.any(String));
            expect(lists[2]?.query['$skiptoken']).toEqual(expect.any(String));
            expect(lists[1]?.query['$skiptoken']).not.toBe(lists[2]?.query['$skiptoken']);

            const pages: number[] = [];
            for await (const page of keys.listPropertiesOfKeys().byPage({ maxPageSize: 3 })) pages.push(page.length);
            expect(pages).toEqual([3, 2]);
            expect(fake.requests.slice(-2).map((r) => r.query['maxresults'])).toEqual(['3', '3']);
        });

        it('answers nextLink as an absolute URL with $skiptoken, and rejects a forged token', async () => {
            for (const name of ['a', 'b', 'c']) await fake.setKey({ name });
            const first = await rawRequest(fake, 'GET', '/keys?api-version=7.4');
            expect(first.body.value).toHaveLength(2);
            const next = first.body.nextLink as string;
            expect(next).toMatch(new RegExp(`^${fake.url}/keys\\?api-version=7\\.4&\\$skiptoken=[A-Za-z0-9_-]+$`));
            const second = await rawRequest(fake, 'GET', next.slice(fake.url.length));
            expect(second.body).toEqual({
                value: [expect.objectContaining({ kid: `${fake.url}/keys/c` })],
                nextLink: null,
            });
            const forged = await rawRequest(fake, 'GET', '/keys?api-version=7.4&$skiptoken=not-a-token');
            expect(forged.status).toBe(400);
        });

        it('listPropertiesOfKeyVersions lists every version with its id, paged', async () => {
            await fake.setKey({ name: 'cmk', versions: [{ enabled: false }, { enabled: false }, {}] });
            const versions = await collect(keys.listPropertiesOfKeyVersions('cmk'));
            expect(versions.map((v) => v.version)).toEqual([0, 1, 2].map((i) => versionOf(fake, 'cmk', i)));
            expect(versions.map((v) => v.id)).toEqual(versions.map((v) => `${fake.vaultUrl}/keys/cmk/${v.version}`));
            expect(versions.map((v) => v.enabled)).toEqual([false, false, true]);
            expect(fake.requests.filter((r) => r.path === '/keys/cmk/versions' && r.status === 200)).toHaveLength(2);

            const err = await failure(collect(keys.listPropertiesOfKeyVersions('nope')));
            expect(err).toMatchObject({ statusCode: 404, code: 'KeyNotFound' });

            // A version added later (a rotation) becomes the current one, with new key material.
            const before = await keys.getKey('cmk');
            const added = await fake.addKeyVersion('cmk', { tags: { rotated: 'yes' }, freshKey: true });
            const after = await keys.getKey('cmk');
            expect(after.id).toBe(added.key.kid);
            expect(after.properties.tags).toEqual({ rotated: 'yes' });
            expect(after.properties.createdOn?.getTime()).toBeGreaterThan(before.properties.createdOn?.getTime() ?? 0);
            expect(b64u(after.key?.n)).not.toBe(b64u(before.key?.n));
            expect(await collect(keys.listPropertiesOfKeyVersions('cmk'))).toHaveLength(4);
        });
    });

    describe('updateKeyProperties', () => {
        it('disables, retags and sets expiry on a version; the challenge request carries no body', async () => {
            await fake.setKey({
                name: 'cmk',
                tags: { stale: 'yes' },
                created: NOW - 10 * DAY,
                updated: NOW - 10 * DAY,
                versions: [{}, {}],
            });
            const older = versionOf(fake, 'cmk', 0);
            const exp = NOW + 90 * DAY;

            const updated = await keys.updateKeyProperties('cmk', older, {
                enabled: false,
                tags: { owner: 'secops' },
                expiresOn: new Date(exp * 1000),
            });
            expect(updated.properties).toMatchObject({
                version: older,
                enabled: false,
                tags: { owner: 'secops' },
                expiresOn: new Date(exp * 1000),
                createdOn: new Date((NOW - 10 * DAY) * 1000),
            });
            expect(updated.properties.updatedOn?.getTime()).toBeGreaterThanOrEqual((NOW - 5) * 1000);

            // First request of the client: body stripped for the challenge; the retry carries it.
            expect(fake.requests[0]).toMatchObject({ method: 'PATCH', body: undefined, status: 401 });
            expect(fake.requests[1]).toMatchObject({
                method: 'PATCH',
                path: `/keys/cmk/${older}`,
                body: { attributes: { enabled: false, exp }, tags: { owner: 'secops' } },
                status: 200,
            });

            // Read back; the other (current) version is untouched.
            const readBack = await keys.getKey('cmk', { version: older });
            expect(readBack.properties).toMatchObject({ enabled: false, tags: { owner: 'secops' } });
            const current = await keys.getKey('cmk');
            expect(current.properties).toMatchObject({ enabled: true, tags: { stale: 'yes' } });
            expect(current.properties.expiresOn).toBeUndefined();

            // Without a version: the current one.
            await keys.updateKeyProperties('cmk', { enabled: false });
            expect(fake.requests.at(-1)?.path).toBe('/keys/cmk/');
            expect(fake.key('cmk').versions.map((v) => v.attributes.enabled)).toEqual([false, false]);
        });
    });

    describe('rotation policy', () => {
        it('returns a set policy, and the service default for a key that never had one', async () => {
            await fake.setKey({
                name: 'rotated',
                rotationPolicy: {
                    lifetimeActions: [
                        { trigger: { timeAfterCreate: 'P90D' }, action: { type: 'Rotate' } },
                        { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } },
                    ],
                    expiryTime: 'P1Y',
                    created: NOW - DAY,
                },
            });
            await fake.setKey({ name: 'unrotated' });

            const policy = await keys.getKeyRotationPolicy('rotated');
            expect(policy).toEqual({
                id: `${fake.vaultUrl}/keys/rotated/rotationpolicy`,
                expiresIn: 'P1Y',
                createdOn: new Date((NOW - DAY) * 1000),
                updatedOn: new Date((NOW - DAY) * 1000),
                lifetimeActions: [
                    { action: 'Rotate', timeAfterCreate: 'P90D', timeBeforeExpiry: undefined },
                    { action: 'Notify', timeAfterCreate: undefined, timeBeforeExpiry: 'P30D' },
                ],
            });

            const none = await keys.getKeyRotationPolicy('unrotated');
            expect(none).toEqual({
                id: undefined,
                expiresIn: undefined,
                createdOn: undefined,
                updatedOn: undefined,
                lifetimeActions: [{ action: 'Notify', timeAfterCreate: undefined, timeBeforeExpiry: 'P30D' }],
            });

            const err = await failure(keys.getKeyRotationPolicy('nope'));
            expect(err).toMatchObject({ statusCode: 404, code: 'KeyNotFound' });
        });

        it('updateKeyRotationPolicy stores the policy and appends the default Notify action', async () => {
            await fake.setKey({ name: 'cmk' });
            const set = await keys.updateKeyRotationPolicy('cmk', {
                lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P60D' }],
                expiresIn: 'P180D',
            });
            expect(set.lifetimeActions).toEqual([
                { action: 'Rotate', timeAfterCreate: 'P60D', timeBeforeExpiry: undefined },
                { action: 'Notify', timeAfterCreate: undefined, timeBeforeExpiry: 'P30D' },
            ]);
            expect(set.expiresIn).toBe('P180D');
            expect(await keys.getKeyRotationPolicy('cmk')).toEqual(set);
            expect(fake.key('cmk').rotationPolicy?.lifetimeActions).toHaveLength(2);
        });
    });

    describe('remote signing', () => {
        it('signData RS256 produces a PKCS#1 v1.5 signature that node:crypto verifies with the key from getKey', async () => {
            await fake.setKey({ name: 'ack-signing' });
            const key = await keys.getKey('ack-signing');
            const crypto = cryptoFor(key.id ?? '');
            const data = Buffer.from('ack|incident-42|kv-prod|2026-01-01T00:00:00Z');
            fake.clearLog();

            const signed = await crypto.signData('RS256', data);
            expect(signed.keyID).toBe(key.id);
            expect(signed.algorithm).toBe('RS256');
            const publicKey = publicKeyOf(key);
            expect(cryptoVerify('sha256', data, publicKey, signed.result)).toBe(true);
            expect(cryptoVerify('sha256', Buffer.from('ack|incident-43'), publicKey, signed.result)).toBe(false);

            // The client fetched the key (after its own challenge) and sent only the digest to sign.
            expect(summary(fake.requests)).toEqual([
                `GET /keys/ack-signing/${key.properties.version} 401`,
                `GET /keys/ack-signing/${key.properties.version} 200`,
                `POST /keys/ack-signing/${key.properties.version}/sign 200`,
            ]);
            expect(fake.requests[2]?.body).toEqual({
                alg: 'RS256',
                value: createHash('sha256').update(data).digest('base64url'),
            });

            // With the key material known, verifyData runs locally: no /verify request.
            expect((await crypto.verifyData('RS256', data, signed.result)).result).toBe(true);
            expect((await crypto.verifyData('RS256', Buffer.from('tampered'), signed.result)).result).toBe(false);
            expect(fake.requests).toHaveLength(3);
        });

        it.each([
            ['RS384', 'sha384', constants.RSA_PKCS1_PADDING],
            ['RS512', 'sha512', constants.RSA_PKCS1_PADDING],
            ['PS256', 'sha256', constants.RSA_PKCS1_PSS_PADDING],
            ['PS512', 'sha512', constants.RSA_PKCS1_PSS_PADDING],
        ])('signData %s verifies with node:crypto', async (alg, hash, padding) => {
            await fake.setKey({ name: 'rsa' });
            const key = await keys.getKey('rsa');
            const data = Buffer.from(`payload for ${alg}`);
            const signed = await cryptoFor(key.id ?? '').signData(alg, data);
            const verifyKey = { key: publicKeyOf(key), padding, saltLength: hash === 'sha256' ? 32 : 64 };
            expect(cryptoVerify(hash, data, verifyKey, signed.result)).toBe(true);
            expect(cryptoVerify(hash, Buffer.from('other'), verifyKey, signed.result)).toBe(false);
        });

        it.each([
            ['ES256', 'P-256', 'sha256'],
            ['ES384', 'P-384', 'sha384'],
            ['ES512', 'P-521', 'sha512'],
        ] as const)(
            '%s on %s: node:crypto verifies the signature and remote verify agrees',
            async (alg, curve, hash) => {
                await fake.setKey({ name: 'ec', kty: 'EC', curve });
                const key = await keys.getKey('ec');
                const crypto = cryptoFor(key.id ?? '');
                const data = Buffer.from(`payload for ${alg}`);

                const signed = await crypto.signData(alg, data);
                const verifyKey = { key: publicKeyOf(key), dsaEncoding: 'ieee-p1363' as const };
                expect(cryptoVerify(hash, data, verifyKey, signed.result)).toBe(true);

                // The SDK has no local EC provider: verifyData goes to the service.
                fake.clearLog();
                expect((await crypto.verifyData(alg, data, signed.result)).result).toBe(true);
                expect((await crypto.verifyData(alg, Buffer.from('other'), signed.result)).result).toBe(false);
                expect(summary(fake.requests)).toEqual([
                    `POST /keys/ec/${key.properties.version}/verify 200`,
                    `POST /keys/ec/${key.properties.version}/verify 200`,
                ]);
            },
        );

        it('signing with a disabled key fails with 403 Forbidden, and works again once re-enabled', async () => {
            await fake.setKey({ name: 'ack-signing', enabled: false });
            const version = versionOf(fake, 'ack-signing');
            const crypto = cryptoFor(`${fake.vaultUrl}/keys/ack-signing/${version}`);

            const err = await failure(crypto.signData('RS256', Buffer.from('x')));
            expect(err).toMatchObject({
                name: 'RestError',
                statusCode: 403,
                code: 'Forbidden',
                message: 'Operation sign is not allowed on a disabled key.',
            });
            expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', status: 403 });

            await keys.updateKeyProperties('ack-signing', version, { enabled: true });
            const signed = await crypto.signData('RS256', Buffer.from('x'));
            expect(cryptoVerify('sha256', Buffer.from('x'), fake.publicKey('ack-signing'), signed.result)).toBe(true);
        });

        it('falls back to remote sign and verify when the client may not read the key (403 on GET)', async () => {
            await fake.setKey({ name: 'ack-signing' });
            const version = versionOf(fake, 'ack-signing');
            fake.inject({ status: 403, match: { method: 'GET', pathIncludes: '/keys/ack-signing' } });
            const crypto = cryptoFor(`${fake.vaultUrl}/keys/ack-signing/${version}`);
            const data = Buffer.from('ack|incident-7');

            const signed = await crypto.signData('RS256', data);
            expect(cryptoVerify('sha256', data, fake.publicKey('ack-signing'), signed.result)).toBe(true);
            expect((await crypto.verifyData('RS256', data, signed.result)).result).toBe(true);
            expect((await crypto.verifyData('RS256', Buffer.from('forged'), signed.result)).result).toBe(false);
            expect(summary(fake.requests)).toEqual([
                `GET /keys/ack-signing/${version} 401`,
                `GET /keys/ack-signing/${version} 403`,
                `POST /keys/ack-signing/${version}/sign 200`,
                `POST /keys/ack-signing/${version}/verify 200`,
                `POST /keys/ack-signing/${version}/verify 200`,
            ]);
            expect(fake.requests[1]?.fault).toMatchObject({ status: 403 });
        });
    });

    describe('faults', () => {
        beforeEach(async () => {
            await fake.setKey({ name: 'cmk' });
        });

        it('429 with Retry-After: 0 is retried by the SDK', async () => {
            fake.inject({ status: 429, retryAfterSeconds: 0, match: { method: 'GET', pathIncludes: '/keys/cmk' } });
            const key = await keys.getKey('cmk');
            expect(key.name).toBe('cmk');
            expect(fake.requests.map((r) => r.status)).toEqual([401, 429, 200]);
            expect(fake.pendingFaults()).toBe(0);
        });

        it('429 without Retry-After surfaces at once as RestError 429', async () => {
            fake.inject({ status: 429 });
            const err = await failure(keys.getKey('cmk'));
            expect(err).toMatchObject({ name: 'RestError', statusCode: 429, code: 'Throttled' });
            expect(fake.requests.map((r) => r.status)).toEqual([401, 429]);
        });

        it('503 is retried with backoff; 500 beyond maxRetries surfaces as RestError 500', async () => {
            fake.inject({ status: 503, times: 2 });
            expect((await keys.getKey('cmk')).name).toBe('cmk');
            expect(fake.requests.map((r) => r.status)).toEqual([401, 503, 503, 200]);

            fake.clearLog();
            fake.inject({ status: 500, times: 10 });
            const err = await failure(keys.getKey('cmk'));
            expect(err).toMatchObject({ statusCode: 500, code: 'InternalServerError' });
            expect(fake.requests).toHaveLength(4); // 1 + maxRetries (3)
            fake.clearFaults();
            expect(fake.pendingFaults()).toBe(0);
        });

        it('a delay holds the request, then the service answers', async () => {
            await keys.getKey('cmk'); // challenge done
            fake.inject({ delayMs: 200, match: { pathIncludes: '/keys/cmk' } });
            const started = Date.now();
            expect((await keys.getKey('cmk')).name).toBe('cmk');
            expect(Date.now() - started).toBeGreaterThanOrEqual(190);
            expect(fake.requests.at(-1)).toMatchObject({ status: 200, fault: { delayMs: 200 } });
        });
    });
});
