// Reads what the posture checks need from a vault's keys through @azure/keyvault-keys: the key list (one page after
// another, enabled and disabled keys), each key's current version and public parameters, and its rotation policy.
import type { KeyClient, KeyRotationPolicy, KeyVaultKey } from '@azure/keyvault-keys';
import type { KeyFacts } from '../core/cmk/posture';

/** Keys read at the same time (2 requests each); Key Vault allows thousands of GETs per vault per 10 s. */
const CONCURRENCY = 4;

interface RestErrorLike {
    statusCode?: number;
    code?: string;
    message?: string;
    details?: unknown;
}

/**
 * True when Key Vault refused a data-plane call because of its firewall: 403 with the inner error code
 * `ForbiddenByFirewall` ("Client address is not authorized and caller is not a trusted service"). The body's
 * `innererror` reaches the SDK error as `details.error.innerError` (the generated model) or as sent.
 */
export function isFirewallDenial(err: unknown): boolean {
    if (typeof err !== 'object' || err === null) return false;
    const e = err as RestErrorLike;
    if (e.statusCode !== 403) return false;
    const body = (typeof e.details === 'object' && e.details !== null ? e.details : {}) as {
        error?: { innerError?: { code?: unknown }; innererror?: { code?: unknown } };
    };
    const inner = body.error?.innerError?.code ?? body.error?.innererror?.code;
    return inner === 'ForbiddenByFirewall' || /client address is not authorized/i.test(e.message ?? '');
}

/**
 * The data plane of a vault is unreachable because its firewall denies this app. Loud and specific: the message
 * names the vault and the fix. Azure Functions and App Service are not Key Vault trusted services, so a vault with
 * `defaultAction: Deny` answers 403 to them unless the app reaches it from an allowed network
 * (deployment-contracts.md, "ARM and Key Vault").
 */
export class VaultFirewallError extends Error {
    constructor(
        readonly vault: string,
        what: string,
        options?: { cause?: unknown },
    ) {
        super(
            `vault ${vault}: data plane unreachable, its firewall refused ${what} (403 ForbiddenByFirewall). Fix: ` +
                'VNet integration for the Function app plus its subnet as a VNet rule of the vault, or a private ' +
                'endpoint (Functions is not a Key Vault trusted service)',
            options,
        );
        this.name = 'VaultFirewallError';
    }
}

function statusOf(err: unknown): number | undefined {
    return typeof err === 'object' && err !== null ? (err as RestErrorLike).statusCode : undefined;
}

/** "403 Forbidden: Caller is not authorized ..." (first line of the service's message). */
function answerOf(err: unknown): string {
    const e = (typeof err === 'object' && err !== null ? err : {}) as RestErrorLike;
    const first = (e.message ?? String(err)).split(/\r?\n/)[0] ?? '';
    return `${e.statusCode ?? '?'}${e.code === undefined ? '' : ` ${e.code}`}: ${first}`;
}

/**
 * A refusal or a missing object: reported as unknown. Anything else (throttling, 5xx, network) is thrown, and so is
 * a firewall denial: it hides every fact of the vault, not one.
 */
function isUnknownAnswer(err: unknown): boolean {
    const s = statusOf(err);
    return (s === 403 && !isFirewallDenial(err)) || s === 404;
}

/**
 * Why a list was refused with 403: the pager's error carries no body (only "Pagination failed with unexpected
 * statusCode 403"), so one key read, whose error does carry the service's message, tells a firewall denial apart
 * from an RBAC or access-policy one. Only on a 403, so it costs nothing otherwise.
 */
async function refusedByFirewall(client: KeyClient, listError: unknown): Promise<boolean> {
    if (statusOf(listError) !== 403) return false;
    try {
        await client.getKey('kvr-why-refused');
        return false;
    } catch (err) {
        return isFirewallDenial(err);
    }
}

/** Bit length of an RSA modulus (big-endian, possibly with leading zero bytes). */
export function modulusBits(n: Uint8Array): number {
    let i = 0;
    while (i < n.length && n[i] === 0) i++;
    if (i === n.length) return 0;
    return (n.length - i - 1) * 8 + (32 - Math.clz32(n[i] ?? 0));
}

/** True when the policy makes Key Vault create new versions: a `Rotate` lifetime action (see KeyFacts). */
export function rotates(policy: KeyRotationPolicy): boolean {
    return (policy.lifetimeActions ?? []).some((a) => a.action.toLowerCase() === 'rotate');
}

function materialOf(key: KeyVaultKey): Pick<KeyFacts, 'kty' | 'keySize' | 'curve'> {
    const kty = key.keyType ?? key.key?.kty;
    const n = key.key?.n;
    const crv = key.key?.crv;
    return {
        kty,
        ...(n === undefined || n.length === 0 ? {} : { keySize: modulusBits(n) }),
        ...(crv === undefined ? {} : { curve: crv }),
    };
}

interface Listed {
    name: string;
    enabled: boolean;
    notBefore: Date | undefined;
    expiresOn: Date | undefined;
    tags: Record<string, string>;
    managed: boolean;
}

async function factsOf(client: KeyClient, listed: Listed): Promise<KeyFacts | undefined> {
    let key: KeyVaultKey | undefined;
    let keyProblem: string | undefined;
    try {
        key = await client.getKey(listed.name);
    } catch (err) {
        if (statusOf(err) === 404) return undefined; // deleted since it was listed
        if (!isUnknownAnswer(err)) throw err;
        keyProblem = answerOf(err);
    }
    // Certificate-backed keys follow the certificate policy (renewal), not a key rotation policy: not read.
    let hasRotationPolicy: boolean | undefined;
    let policyProblem: string | undefined;
    if (!listed.managed) {
        try {
            hasRotationPolicy = rotates(await client.getKeyRotationPolicy(listed.name));
        } catch (err) {
            if (!isUnknownAnswer(err)) throw err;
            policyProblem = answerOf(err);
        }
    }
    // The key read a moment after the list is the fresher view of the current version's attributes.
    const p = key?.properties;
    const notBefore = (p ?? listed).notBefore;
    const expiresOn = (p ?? listed).expiresOn;
    const unreadable = {
        ...(keyProblem === undefined ? {} : { key: keyProblem }),
        ...(policyProblem === undefined ? {} : { rotationPolicy: policyProblem }),
    };
    return {
        name: listed.name,
        version: p?.version,
        ...(key === undefined ? { kty: undefined } : materialOf(key)),
        enabled: p?.enabled ?? listed.enabled,
        ...(notBefore === undefined ? {} : { notBefore: notBefore.getTime() }),
        ...(expiresOn === undefined ? {} : { expiresOn: expiresOn.getTime() }),
        tags: { ...(p?.tags ?? listed.tags) },
        managed: listed.managed,
        hasRotationPolicy,
        keyOps: [...(key?.keyOperations ?? [])],
        ...(Object.keys(unreadable).length === 0 ? {} : { unreadable }),
    };
}

/**
 * The current version of every key in the vault, enabled and disabled, in list order (`listPropertiesOfKeys`, all
 * pages), with its type and size (`getKey`: public parameters only) and whether its rotation policy rotates it
 * (`getKeyRotationPolicy`). Certificate-backed keys (`managed`) are read with `getKey` (a weak certificate key is
 * still weak) but their rotation policy is not: the certificate policy renews them.
 *
 * A 403 or 404 on `getKey` or `getKeyRotationPolicy` makes that fact unknown (`unreadable` says why), not absent; a
 * key that is gone by the time it is read (404 on `getKey`) is left out. Other failures (throttling after the
 * client's retries, 5xx, network) and any failure of the list itself are thrown; a vault firewall denial as a
 * {@link VaultFirewallError} that names the fix.
 * @param vaultName - For error messages.
 */
export async function readVaultKeys(client: KeyClient, vaultName: string): Promise<KeyFacts[]> {
    const listed: Listed[] = [];
    try {
        for await (const p of client.listPropertiesOfKeys()) {
            listed.push({
                name: p.name,
                enabled: p.enabled ?? true,
                notBefore: p.notBefore,
                expiresOn: p.expiresOn,
                tags: { ...(p.tags ?? {}) },
                managed: p.managed === true,
            });
        }
    } catch (err) {
        if (isFirewallDenial(err) || (await refusedByFirewall(client, err)))
            throw new VaultFirewallError(vaultName, 'the key list', { cause: err });
        throw new Error(`cannot list the keys of vault ${vaultName}: ${answerOf(err)}`, { cause: err });
    }
    const out: (KeyFacts | undefined)[] = [];
    for (let i = 0; i < listed.length; i += CONCURRENCY) {
        const batch = listed.slice(i, i + CONCURRENCY);
        try {
            out.push(...(await Promise.all(batch.map((l) => factsOf(client, l)))));
        } catch (err) {
            if (isFirewallDenial(err)) throw new VaultFirewallError(vaultName, 'a key read', { cause: err });
            throw new Error(`cannot read the keys of vault ${vaultName}: ${answerOf(err)}`, { cause: err });
        }
    }
    return out.filter((k): k is KeyFacts => k !== undefined);
}
