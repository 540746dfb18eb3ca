// Link signing: KeyVaultLinkSigner against the Key Vault keys fake through the real @azure/keyvault-keys clients, and
// the development key file of LocalLinkSigner.
import { generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CryptographyClient } from '@azure/keyvault-keys';
import { KeyVaultLinkSigner, LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { LinkTokens } from '../../shared/app/alerting';
import { type LinkClaims, parseToken, signingInputOf, tokenOf } from '../../shared/core/alerts/token';
import type { Clock } from '../../shared/core/ports';
import {
    KEY_VAULT_SCOPE,
    type KeyVaultKeysFake,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../../shared/simulation/keyVaultKeysFake';
import { StubTokenCredential } from '../fakes/armClient';

const KEY = 'link-signing';
const PUBLIC_URL = 'https://kvr-func.example.net';
const HOUR_MS = 3_600_000;

/** Wall-clock time under the test's control. */
const clock: Clock & { t: number } = {
    t: Date.parse('2026-10-05T09:00:00.000Z'),
    now() {
        return this.t;
    },
    sleep(ms: number) {
        this.t += ms;
        return Promise.resolve();
    },
};

/** The token of a link URL. */
function tokenOfUrl(url: string): string {
    const t = new URL(url).searchParams.get('t');
    if (t === null) throw new Error(`no token in ${url}`);
    return t;
}

function claimsFor(inc: string): LinkClaims {
    const iat = Math.floor(clock.now() / 1000);
    return { inc, act: 'ack', iat, exp: iat + 3600, jti: `jti-${inc}` };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; statusCode?: number }> {
    try {
        await p;
    } catch (e) {
        return e as Error & { code?: string; statusCode?: number };
    }
    throw new Error('expected a rejection');
}

describe('KeyVaultLinkSigner with the real Key Vault keys clients', () => {
    let fake: KeyVaultKeysFake;
    let credential: StubTokenCredential;

    beforeEach(async () => {
        // Fresh key material for the other key: by default the fake shares one RSA key between keys.
        fake = await startKeyVaultKeysFake({ keys: [{ name: KEY }, { name: 'other-key', freshKey: true }] });
        credential = new StubTokenCredential(fake.token);
    });
    afterEach(async () => {
        await fake.close();
    });

    const signerFor = (keyName = KEY) =>
        new KeyVaultLinkSigner(fake.vaultUrl, keyName, credential, keysClientOptionsFor(fake));
    const tokensOf = (signer: KeyVaultLinkSigner) => new LinkTokens(signer, PUBLIC_URL, HOUR_MS, clock);
    const currentVersion = () => {
        const kid = fake.keyBundle(KEY).key.kid;
        return kid.slice(kid.lastIndexOf('/') + 1);
    };

    it('names the current key version; the first request meets the 401 challenge', async () => {
        const signer = signerFor();
        const kid = await signer.currentKid();
        expect(kid).toBe(fake.keyBundle(KEY).key.kid);
        expect(kid).toBe(`${fake.vaultUrl}/keys/${KEY}/${currentVersion()}`);
        expect(currentVersion()).toMatch(/^[0-9a-f]{32}$/);
        expect(fake.requests.map((r) => [r.method, r.path, r.authorization, r.status])).toEqual([
            ['GET', `/keys/${KEY}/`, undefined, 401],
            ['GET', `/keys/${KEY}/`, `Bearer ${fake.token}`, 200],
        ]);
        expect(credential.requestedScopes).toEqual([[KEY_VAULT_SCOPE]]);
        // Cached: asking again costs nothing.
        expect(await signer.currentKid()).toBe(kid);
        expect(fake.requests).toHaveLength(2);
    });

    it('issues tokens signed in Key Vault that verify locally, with no request after the first', async () => {
        const signer = signerFor();
        const links = tokensOf(signer);
        const url = await links.issue('inc-1', 'ack');
        expect(url).toMatch(new RegExp(`^${PUBLIC_URL}/api/incidents/inc-1/ack\\?t=`));
        const token = tokenOfUrl(url);
        // The private key never left the vault: the service signed the digest.
        expect(fake.requests.filter((r) => r.method === 'POST').map((r) => [r.path, r.status])).toEqual([
            [`/keys/${KEY}/${currentVersion()}/sign`, 200],
        ]);
        // A real RS256 signature by the vault's key over the token's signing input.
        const parsed = parseToken(token);
        if ('error' in parsed) throw new Error(parsed.error);
        expect(parsed.kid).toBe(fake.keyBundle(KEY).key.kid);
        expect(
            cryptoVerify(
                'sha256',
                Buffer.from(parsed.signingInput),
                fake.publicKey(KEY),
                Buffer.from(parsed.signature),
            ),
        ).toBe(true);

        fake.clearLog();
        expect(await links.verify(token, 'inc-1', 'ack')).toMatchObject({ claims: { inc: 'inc-1', act: 'ack' } });
        expect(await links.verify(token, 'inc-1', 'ack')).toMatchObject({ claims: { inc: 'inc-1' } });
        expect(await links.verify(token, 'inc-2', 'ack')).toEqual({
            error: 'the token belongs to another incident',
            status: 403,
        });
        expect(fake.requests).toEqual([]);

        // Another instance (another function host) reads the public key once, then verifies from its cache.
        const other = tokensOf(signerFor());
        expect(await other.verify(token, 'inc-1', 'ack')).toMatchObject({ claims: { inc: 'inc-1' } });
        expect(fake.requests.filter((r) => r.status === 200).map((r) => [r.method, r.path])).toEqual([
            ['GET', `/keys/${KEY}/${currentVersion()}`],
        ]);
        fake.clearLog();
        expect(await other.verify(token, 'inc-1', 'ack')).toMatchObject({ claims: { inc: 'inc-1' } });
        // A tampered token (claims changed, signature kept) fails, still without a request.
        const [h, , s] = token.split('.') as [string, string, string];
        const forgedClaims = Buffer.from(JSON.stringify({ ...parsed.claims, inc: 'inc-9' })).toString('base64url');
        expect(await other.verify(`${h}.${forgedClaims}.${s}`, 'inc-9', 'ack')).toEqual({
            error: 'the link signature is not valid',
            status: 403,
        });
        expect(fake.requests).toEqual([]);
    });

    it('rejects, without a request, a token whose kid names another key or another vault', async () => {
        const signer = signerFor();
        await signer.currentKid();
        // A genuine Key Vault signature, but by another key of the same vault.
        const otherKid = fake.keyBundle('other-key').key.kid;
        const crypto = new CryptographyClient(otherKid, credential, keysClientOptionsFor(fake));
        const input = signingInputOf(otherKid, claimsFor('inc-1'));
        const signature = (await crypto.signData('RS256', Buffer.from(input))).result;
        expect(cryptoVerify('sha256', Buffer.from(input), fake.publicKey('other-key'), signature)).toBe(true);
        expect(cryptoVerify('sha256', Buffer.from(input), fake.publicKey(KEY), signature)).toBe(false);
        const version = currentVersion();
        const kids = [
            otherKid,
            `https://kv-elsewhere.vault.azure.net/keys/${KEY}/${version}`,
            `${fake.vaultUrl}/keys/${KEY}-old/${version}`,
            `${fake.vaultUrl}/secrets/${KEY}/${version}`,
            // Our prefix, but a "version" that walks to the other key.
            `${fake.vaultUrl}/keys/${KEY}/../other-key/${otherKid.slice(otherKid.lastIndexOf('/') + 1)}`,
            `${fake.vaultUrl}/keys/${KEY}/..%2Fother-key%2F${otherKid.slice(otherKid.lastIndexOf('/') + 1)}`,
            `${fake.vaultUrl}/keys/${KEY}/`,
        ];
        fake.clearLog();
        for (const kid of kids) expect(await signer.verify(Buffer.from(input), signature, kid)).toBe(false);
        const links = tokensOf(signer);
        expect(await links.verify(tokenOf(input, signature), 'inc-1', 'ack')).toEqual({
            error: 'the link signature is not valid',
            status: 403,
        });
        expect(fake.requests).toEqual([]);
    });

    it('an unknown version of our key is rejected (one lookup, 404), not thrown', async () => {
        const signer = signerFor();
        await signer.currentKid();
        const kid = `${fake.vaultUrl}/keys/${KEY}/00000000000000000000000000000000`;
        const input = signingInputOf(kid, claimsFor('inc-1'));
        const signature = await signer.sign(Buffer.from(input));
        fake.clearLog();
        expect(await signer.verify(Buffer.from(input), signature, kid)).toBe(false);
        expect(fake.requests.map((r) => [r.method, r.path, r.status])).toEqual([
            ['GET', `/keys/${KEY}/00000000000000000000000000000000`, 404],
        ]);
    });

    it('after a rotation, tokens of the old version still verify (that version is read once)', async () => {
        const before = signerFor();
        const oldKid = await before.currentKid();
        const oldVersion = currentVersion();
        const oldToken = tokenOfUrl(await tokensOf(before).issue('inc-1', 'undo'));

        await fake.addKeyVersion(KEY, { freshKey: true });
        expect(currentVersion()).not.toBe(oldVersion);
        const oldKey = fake.publicKey(KEY, oldVersion).export({ format: 'jwk' });
        expect(fake.publicKey(KEY).export({ format: 'jwk' })).not.toEqual(oldKey);
        // A host started after the rotation signs with the new version ...
        const after = signerFor();
        const links = tokensOf(after);
        const newKid = await after.currentKid();
        expect(newKid).toBe(fake.keyBundle(KEY).key.kid);
        expect(newKid).not.toBe(oldKid);
        const newToken = tokenOfUrl(await links.issue('inc-2', 'undo'));
        const parsed = parseToken(newToken);
        expect('error' in parsed ? parsed.error : parsed.kid).toBe(newKid);

        // ... and still accepts links sent before it.
        fake.clearLog();
        expect(await links.verify(oldToken, 'inc-1', 'undo')).toMatchObject({ claims: { inc: 'inc-1' } });
        expect(fake.requests.map((r) => [r.method, r.path, r.status])).toEqual([
            ['GET', `/keys/${KEY}/${oldVersion}`, 200],
        ]);
        fake.clearLog();
        expect(await links.verify(oldToken, 'inc-1', 'undo')).toMatchObject({ claims: { inc: 'inc-1' } });
        expect(await links.verify(newToken, 'inc-2', 'undo')).toMatchObject({ claims: { inc: 'inc-2' } });
        expect(fake.requests).toEqual([]);
    });

    it('signing with a disabled key fails with a clear error', async () => {
        await fake.setKey({ name: KEY, enabled: false });
        const signer = signerFor();
        const err = await rejection(signer.sign(Buffer.from('x')));
        expect(err.message).toMatch(/disabled/i);
        expect(err.message).toContain('sign');
        const viaLinks = await rejection(tokensOf(signer).issue('inc-1', 'ack'));
        expect(viaLinks.message).toMatch(/disabled/i);
        expect(fake.requests.filter((r) => r.method === 'POST').every((r) => r.status === 403)).toBe(true);
    });

    it('a key that is not RSA is refused with a clear error', async () => {
        await fake.setKey({ name: KEY, kty: 'EC', curve: 'P-256' });
        const err = await rejection(signerFor().currentKid());
        expect(err).toMatchObject({ code: 'CONFIG.INVALID' });
        expect(err.message).toBe('the link-signing key must be an RSA key (it is EC)');
    });
});

describe('LocalLinkSigner.fromFile', () => {
    let dir: string;
    beforeEach(async () => {
        dir = await mkdtemp(join(tmpdir(), 'kvr-link-signer-'));
    });
    afterEach(async () => {
        await rm(dir, { recursive: true, force: true });
    });

    it('creates the key file (mode 0600, directories included) and reuses it on the next start', async () => {
        const path = join(dir, '.kvr', 'nested', 'dev-signing-key.pem');
        const first = await LocalLinkSigner.fromFile(path);
        const pem = await readFile(path, 'utf8');
        expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
        expect((await stat(path)).mode & 0o777).toBe(0o600);

        const second = await LocalLinkSigner.fromFile(path);
        expect(await readFile(path, 'utf8')).toBe(pem);
        const input = Buffer.from('signing input');
        const kid = await first.currentKid();
        expect(await second.currentKid()).toBe(kid);
        expect(await second.verify(input, await first.sign(input), kid)).toBe(true);
        expect(await first.verify(input, await second.sign(input), kid)).toBe(true);
        expect(await second.verify(Buffer.from('other input'), await first.sign(input), kid)).toBe(false);
        expect(await second.verify(input, await first.sign(input), 'another-kid')).toBe(false);

        // Links issued before a restart stay valid after it; a key generated elsewhere does not verify.
        const url = await new LinkTokens(first, PUBLIC_URL, HOUR_MS, clock).issue('inc-1', 'ack');
        const restarted = new LinkTokens(second, PUBLIC_URL, HOUR_MS, clock);
        expect(await restarted.verify(tokenOfUrl(url), 'inc-1', 'ack')).toMatchObject({ claims: { inc: 'inc-1' } });
        const stranger = new LinkTokens(
            await LocalLinkSigner.fromFile(join(dir, 'other.pem')),
            PUBLIC_URL,
            HOUR_MS,
            clock,
        );
        expect(await stranger.verify(tokenOfUrl(url), 'inc-1', 'ack')).toEqual({
            error: 'the link signature is not valid',
            status: 403,
        });
    });

    it('rejects a file that is not a PEM private key, and leaves it alone', async () => {
        const path = join(dir, 'not-a-key.pem');
        await writeFile(path, 'this is not a key\n');
        const err = await rejection(LocalLinkSigner.fromFile(path));
        expect(err).toMatchObject({ name: 'ResponderError', code: 'CONFIG.INVALID' });
        expect(err.message).toMatch(
            new RegExp(`^signing key '${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is not a PEM private key: `),
        );
        expect(await readFile(path, 'utf8')).toBe('this is not a key\n');

        // A public key is not a signing key either.
        const pub = join(dir, 'public.pem');
        const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
        expect(await rejection(LocalLinkSigner.fromFile(pub))).toMatchObject({ code: 'CONFIG.INVALID' });
    });

    it('reports a path it cannot read (not a missing file) instead of overwriting it', async () => {
        const path = join(dir, 'a-directory');
        await mkdir(path);
        const err = await rejection(LocalLinkSigner.fromFile(path));
        expect(err).toMatchObject({ code: 'INPUT.UNREADABLE' });
        expect(err.message).toMatch(/^cannot read signing key '.*a-directory': /);
    });
});
