// Signing keys for acknowledge and undo links. Production signs with an RSA key in Azure Key Vault (the private key
// never leaves the vault) and verifies locally with the cached public key; local runs use a development key file.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TokenCredential } from '@azure/identity';
import { CryptographyClient, KeyClient, type CryptographyClientOptions } from '@azure/keyvault-keys';
import { ResponderError } from '../core/errors';

export interface LinkSigner {
    /** The key id written into new tokens. */
    currentKid(): Promise<string>;
    /** RS256 signature of `input` with the current key. */
    sign(input: Buffer): Promise<Buffer>;
    /** Whether `signature` is a valid RS256 signature of `input` by key `kid` (false for a key not ours). */
    verify(input: Buffer, signature: Uint8Array, kid: string): Promise<boolean>;
}

/** An in-process RSA key: tests and local runs (`kvr serve`, `kvr replay --outbox`). */
export class LocalLinkSigner implements LinkSigner {
    private readonly publicKey: KeyObject;

    constructor(
        private readonly privateKey: KeyObject,
        private readonly kid = 'local-dev-key',
    ) {
        this.publicKey = createPublicKey(privateKey);
    }

    static generate(kid?: string): LocalLinkSigner {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return new LocalLinkSigner(privateKey, kid);
    }

    /** Loads the development key from `path`, creating it (mode 0600) on first use. */
    static async fromFile(path: string): Promise<LocalLinkSigner> {
        let pem: string;
        try {
            pem = await readFile(path, 'utf8');
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
                throw new ResponderError(
                    'INPUT.UNREADABLE',
                    `cannot read signing key '${path}': ${(err as Error).message}`,
                );
            }
            const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
            pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
            await mkdir(dirname(path), { recursive: true });
            await writeFile(path, pem, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
                // Another process created it first: use that one.
                if (e.code !== 'EEXIST') throw e;
                pem = await readFile(path, 'utf8');
            });
        }
        try {
            return new LocalLinkSigner(createPrivateKey(pem), 'local-dev-key');
        } catch (err) {
            throw new ResponderError(
                'CONFIG.INVALID',
                `signing key '${path}' is not a PEM private key: ${(err as Error).message}`,
            );
        }
    }

    currentKid(): Promise<string> {
        return Promise.resolve(this.kid);
    }

    sign(input: Buffer): Promise<Buffer> {
        return Promise.resolve(sign('sha256', input, this.privateKey));
    }

    verify(input: Buffer, signature: Uint8Array, kid: string): Promise<boolean> {
        if (kid !== this.kid) return Promise.resolve(false);
        return Promise.resolve(verify('sha256', input, this.publicKey, signature));
    }
}

const MAX_CACHED_KEYS = 16;

/**
 * Signs with `CryptographyClient.signData('RS256')` (remote: needs Key Vault Crypto User on the key) and verifies with
 * the public key read once per key version (`keys/get`), cached: verification needs no call to Key Vault.
 */
export class KeyVaultLinkSigner implements LinkSigner {
    private readonly keys: KeyClient;
    private current: Promise<{ kid: string; crypto: CryptographyClient }> | undefined;
    private readonly publicKeys = new Map<string, Promise<KeyObject | undefined>>();

    constructor(
        private readonly vaultUrl: string,
        private readonly keyName: string,
        private readonly credential: TokenCredential,
        private readonly options: CryptographyClientOptions = {},
    ) {
        this.keys = new KeyClient(vaultUrl, credential, options);
    }

    private async currentKey(): Promise<{ kid: string; crypto: CryptographyClient }> {
        this.current ??= (async () => {
            const key = await this.keys.getKey(this.keyName);
            if (key.id === undefined || key.key === undefined)
                throw new ResponderError(
                    'CONFIG.INVALID',
                    `signing key ${this.keyName} in ${this.vaultUrl} has no key material`,
                );
            this.publicKeys.set(key.id, Promise.resolve(createPublicKey({ key: jwkOf(key.key), format: 'jwk' })));
            return { kid: key.id, crypto: new CryptographyClient(key.id, this.credential, this.options) };
        })().catch((err: unknown) => {
            this.current = undefined;
            throw err;
        });
        return this.current;
    }

    async currentKid(): Promise<string> {
        return (await this.currentKey()).kid;
    }

    async sign(input: Buffer): Promise<Buffer> {
        const { crypto } = await this.currentKey();
        const result = await crypto.signData('RS256', input);
        return Buffer.from(result.result);
    }

    async verify(input: Buffer, signature: Uint8Array, kid: string): Promise<boolean> {
        const prefix = `${this.vaultUrl.replace(/\/+$/, '')}/keys/${this.keyName}/`;
        // Only versions of our own key: a token naming any other key id is forged.
        if (!kid.toLowerCase().startsWith(prefix.toLowerCase())) return false;
        let pending = this.publicKeys.get(kid);
        if (pending === undefined) {
            const version = kid.slice(prefix.length);
            // A Key Vault key version is 32 hex digits: anything else (paths, encodings) is forged; no request for it.
            if (!/^[0-9a-f]{32}$/i.test(version)) return false;
            if (this.publicKeys.size >= MAX_CACHED_KEYS) this.publicKeys.clear();
            pending = this.keys.getKey(this.keyName, { version }).then(
                (k) => (k.key === undefined ? undefined : createPublicKey({ key: jwkOf(k.key), format: 'jwk' })),
                (err: unknown) => {
                    this.publicKeys.delete(kid);
                    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
                    throw err;
                },
            );
            this.publicKeys.set(kid, pending);
        }
        const key = await pending;
        return key === undefined ? false : verify('sha256', input, key, signature);
    }
}

/** The SDK's JsonWebKey (byte arrays) as a node:crypto JWK (base64url strings). */
function jwkOf(k: { kty?: string; n?: Uint8Array; e?: Uint8Array }): { kty: string; n: string; e: string } {
    if (k.n === undefined || k.e === undefined || (k.kty !== 'RSA' && k.kty !== 'RSA-HSM'))
        throw new ResponderError(
            'CONFIG.INVALID',
            `the link-signing key must be an RSA key (it is ${k.kty ?? 'unknown'})`,
        );
    return { kty: 'RSA', n: Buffer.from(k.n).toString('base64url'), e: Buffer.from(k.e).toString('base64url') };
}
