// A real @azure/arm-keyvault client pointed at the local ARM fake (armKeyVaultFake.ts), over HTTPS with the test CA.
import {
    AuthorizationManagementClient,
    type AuthorizationManagementClientOptionalParams,
} from '@azure/arm-authorization';
import { KeyVaultManagementClient, type KeyVaultManagementClientOptionalParams } from '@azure/arm-keyvault';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { ArmAccessAdmin } from '../../shared/adapters/armAccessAdmin';
import { ArmVaultAdmin } from '../../shared/adapters/armVaultAdmin';
import { type ArmKeyVaultFake, startArmKeyVaultFake, type Vault } from '../../shared/simulation/armSimulator';

/** The scope a real ARM credential is asked for. */
export const ARM_SCOPE = 'https://management.azure.com/.default';
export const FAKE_ARM_TOKEN = 'fake-arm-access-token';

/** A TokenCredential that hands out a fixed token and records the scopes it was asked for. */
export class StubTokenCredential implements TokenCredential {
    /** One entry per getToken call. */
    readonly requestedScopes: string[][] = [];

    constructor(private readonly token: string = FAKE_ARM_TOKEN) {}

    getToken(scopes: string | string[]): Promise<AccessToken> {
        this.requestedScopes.push(Array.isArray(scopes) ? [...scopes] : [scopes]);
        return Promise.resolve({ token: this.token, expiresOnTimestamp: Date.now() + 3600 * 1000 });
    }
}

export interface ArmClientOptions {
    /** Passed through to the pipeline; tests use small delays, e.g. `{ maxRetries: 2, retryDelayInMs: 1 }`. */
    retryOptions?: KeyVaultManagementClientOptionalParams['retryOptions'];
    /** Defaults to a new StubTokenCredential. */
    credential?: TokenCredential;
    /** Defaults to the SDK's own (2026-02-01 for @azure/arm-keyvault 5.0.0). */
    apiVersion?: string;
    additionalPolicies?: KeyVaultManagementClientOptionalParams['additionalPolicies'];
}

/**
 * A real KeyVaultManagementClient talking to the fake. `credentials.scopes` is set explicitly: with a custom
 * `endpoint` the client would otherwise ask for `${endpoint}/.default` (azure-contracts.md 1.6). The test CA is trusted
 * for this client only (`tlsOptions.ca`), never process-wide.
 */
export function armClientFor(
    fake: Pick<ArmKeyVaultFake, 'url' | 'caPem'>,
    subscriptionId: string,
    options: ArmClientOptions = {},
): KeyVaultManagementClient {
    const clientOptions: KeyVaultManagementClientOptionalParams = {
        endpoint: fake.url,
        credentials: { scopes: [ARM_SCOPE] },
        tlsOptions: { ca: fake.caPem },
    };
    if (options.retryOptions !== undefined) clientOptions.retryOptions = options.retryOptions;
    if (options.apiVersion !== undefined) clientOptions.apiVersion = options.apiVersion;
    if (options.additionalPolicies !== undefined) clientOptions.additionalPolicies = options.additionalPolicies;
    return new KeyVaultManagementClient(options.credential ?? new StubTokenCredential(), subscriptionId, clientOptions);
}

/**
 * A real @azure/arm-authorization client pointed at the fake (role assignments, api-version 2022-04-01), built like
 * the Key Vault client above. The subscription id does not matter for the by-id operations remediation uses.
 */
export function authorizationClientFor(
    fake: Pick<ArmKeyVaultFake, 'url' | 'caPem'>,
    options: {
        retryOptions?: AuthorizationManagementClientOptionalParams['retryOptions'];
        credential?: TokenCredential;
    } = {},
): AuthorizationManagementClient {
    return new AuthorizationManagementClient(
        options.credential ?? new StubTokenCredential(),
        '00000000-0000-0000-0000-000000000000',
        {
            endpoint: fake.url,
            // With a custom endpoint the client would ask for `${endpoint}/.default`: ask for ARM's scope.
            credentialScopes: [ARM_SCOPE],
            tlsOptions: { ca: fake.caPem },
            retryOptions: options.retryOptions ?? { maxRetries: 0 },
        },
    );
}

/** ArmAccessAdmin (role assignments through the real SDK, diagnostic settings as REST) against the fake. */
export function accessAdminFor(fake: Pick<ArmKeyVaultFake, 'url' | 'caPem'>, timeoutMs?: number): ArmAccessAdmin {
    return new ArmAccessAdmin(authorizationClientFor(fake), new StubTokenCredential(), {
        endpoint: fake.url,
        ca: fake.caPem,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
}

/**
 * ArmVaultAdmin through the real KeyVaultManagementClient against the fake, with no SDK retries (the remediator retries
 * within its own budget; a test that wants the SDK's retries builds its client with {@link armClientFor}).
 */
export function vaultAdminFor(fake: Pick<ArmKeyVaultFake, 'url' | 'caPem'>, timeoutMs?: number): ArmVaultAdmin {
    return new ArmVaultAdmin((sub) => armClientFor(fake, sub, { retryOptions: { maxRetries: 0 } }), timeoutMs);
}

/**
 * The ARM fake for one test file: started before its tests, closed after them, and before each test set back to what
 * a test may change: the vault (to `vault()`, when given), injected faults, the request log and the read-write hook.
 */
export function useArmKeyVaultFake(vault?: () => Vault): { readonly fake: ArmKeyVaultFake } {
    let fake: ArmKeyVaultFake | undefined;
    const started = (): ArmKeyVaultFake => {
        if (fake === undefined) throw new Error('the ARM fake is used outside the tests of its file');
        return fake;
    };
    beforeAll(async () => {
        fake = await startArmKeyVaultFake();
    });
    afterAll(async () => {
        await fake?.close();
    });
    beforeEach(() => {
        const f = started();
        if (vault !== undefined) f.setVault(vault());
        f.clearFaults();
        f.clearLog();
        f.onReadWriteWindow(undefined);
    });
    return {
        get fake() {
            return started();
        },
    };
}
