import type { TokenCredential } from '@azure/identity';
import { KeyClient, type KeyClientOptions, type KeyProperties } from '@azure/keyvault-keys';
import { ResponderError } from '../core/errors';
import type { KeyStateReader, KeyVersionState } from '../core/ports';
import { isFirewallDenial, VaultFirewallError } from './keyVaultKeys';

const KEY_ID = /^(https:\/\/[^/]+)\/keys\/([^/?#]+)(?:\/([^/?#]*))?\/?$/i;

/** Splits `https://<vault>/keys/<name>[/<version>]`. */
export function parseKeyId(keyId: string): { vaultUrl: string; name: string; version: string | undefined } {
    const m = KEY_ID.exec(keyId);
    if (m === null) throw new ResponderError('INPUT.UNREADABLE', `not a Key Vault key id: ${keyId}`);
    return { vaultUrl: (m[1] as string).toLowerCase(), name: m[2] as string, version: m[3] === '' ? undefined : m[3] };
}

/** The state, named by the vault URL it was asked for (what the audit records say) and the version found. */
function stateOf(vaultUrl: string, p: KeyProperties): KeyVersionState {
    return {
        keyId: `${vaultUrl}/keys/${p.name}/${p.version ?? ''}`,
        enabled: p.enabled !== false,
        ...(p.expiresOn === undefined ? {} : { expiresOn: p.expiresOn.toISOString() }),
        ...(p.notBefore === undefined ? {} : { notBefore: p.notBefore.toISOString() }),
        ...(p.updatedOn === undefined ? {} : { updatedOn: p.updatedOn.toISOString() }),
    };
}

/** `KeyStateReader` over `@azure/keyvault-keys`, one `KeyClient` per vault. */
export class KeyVaultKeyStateReader implements KeyStateReader {
    private readonly clients = new Map<string, KeyClient>();

    constructor(
        private readonly credential: TokenCredential,
        private readonly options: KeyClientOptions = {},
        private readonly timeoutMs = 15_000,
    ) {}

    private client(vaultUrl: string): KeyClient {
        let c = this.clients.get(vaultUrl);
        if (c === undefined) {
            c = new KeyClient(vaultUrl, this.credential, this.options);
            this.clients.set(vaultUrl, c);
        }
        return c;
    }

    async read(keyId: string): Promise<KeyVersionState | undefined> {
        const { vaultUrl, name, version } = parseKeyId(keyId);
        try {
            const key = await this.client(vaultUrl).getKey(name, {
                ...(version === undefined ? {} : { version }),
                abortSignal: AbortSignal.timeout(this.timeoutMs),
            });
            return stateOf(vaultUrl, key.properties);
        } catch (err) {
            if ((err as { statusCode?: number }).statusCode === 404) return undefined;
            if (isFirewallDenial(err))
                throw new VaultFirewallError(new URL(vaultUrl).hostname, `reading key ${name}`, { cause: err });
            throw err;
        }
    }

    async enable(keyId: string): Promise<KeyVersionState> {
        const { vaultUrl, name, version } = parseKeyId(keyId);
        if (version === undefined)
            throw new ResponderError('INPUT.UNREADABLE', `re-enable needs a key version: ${keyId}`);
        try {
            const p = await this.client(vaultUrl).updateKeyProperties(name, version, {
                enabled: true,
                abortSignal: AbortSignal.timeout(this.timeoutMs),
            });
            return stateOf(vaultUrl, p.properties);
        } catch (err) {
            if (isFirewallDenial(err))
                throw new VaultFirewallError(new URL(vaultUrl).hostname, `re-enabling key ${name}`, { cause: err });
            throw err;
        }
    }
}
