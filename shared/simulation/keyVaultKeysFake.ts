// A local HTTPS simulation of the Azure Key Vault keys data plane (https://{vault}.vault.azure.net/keys/...), driven
// through the real @azure/keyvault-keys KeyClient and CryptographyClient by the tests. It serves two features:
// signing acknowledgement-link tokens with RS256 (remote `sign`, local verification) and the CMK posture/inventory
// (list keys and versions, read key properties and rotation policies).
//
// How clients reach it: DIRECTLY, with the fake's URL as the vault URL (azure-contracts.md 2.3 C):
//     new KeyClient(fake.vaultUrl, credential, keysClientOptionsFor(fake))
// i.e. `https://localhost:PORT`, the test CA trusted per client (`tlsOptions: { ca }`) and
// `disableChallengeResourceVerification: true` (the challenge resource, vault.azure.net, is not a suffix of
// localhost). One fake is one vault: start one fake per vault. The redirect-policy way (2.3 A) is not supported: key
// identifiers and nextLinks always name the fake's own URL.
//
// Sources for service behaviour (see also azure-contracts.md 3): wire shapes from @azure/keyvault-keys 4.10.2
// (models/models.js serializers) and from recorded live traffic in Azure/azure-sdk-for-js
// (sdk/keyvault/keyvault-keys/recordings/node/...: 401 challenge body and header, list pages with versionless kids,
// `recoveryLevel`/`recoverableDays`, nextLink with `$skiptoken`, rotation-policy PUT adding a default Notify action).
// Error texts are quoted from public issue threads where found; the rest is marked "fake wording".
import {
    type KeyObject,
    constants as cryptoConstants,
    createECDH,
    createHash,
    createPrivateKey,
    createPublicKey,
    generateKeyPair,
    privateEncrypt,
    publicDecrypt,
    randomBytes,
    randomUUID,
    timingSafeEqual,
} from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import type { KeyClientOptions } from '@azure/keyvault-keys';
import { listenHttps } from './httpsFake';
import { getTestCa } from './selfSignedCa';

// ---------------------------------------------------------------------------------------------------------------
// Constants

/** The resource named in the 401 challenge; a credential is asked for `${KEY_VAULT_RESOURCE}/.default`. */
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
export const KEY_VAULT_SCOPE = `${KEY_VAULT_RESOURCE}/.default`;
/** The only bearer token the fake accepts unless `options.token` says otherwise. */
export const FAKE_KV_TOKEN = 'fake-keyvault-access-token';
/** Same tenant as the ARM fake's vaults (makeVault), so a vault's tenantId and the challenge agree. */
export const FAKE_KV_TENANT_ID = '00000000-0000-0000-0000-0000000000aa';
/**
 * api-versions the fake answers: the 7.x line and what @azure/keyvault-keys 4.10.x sends (`2025-07-01`,
 * azure-contracts.md 3.1). Anything else gets the service's BadParameter "not recognized" error.
 */
export const KV_API_VERSIONS: readonly string[] = ['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01'];
/** The service's largest page (`maxresults` accepts 1..25). */
const MAX_PAGE_SIZE = 25;
/** Added by the service to a rotation policy without a Notify action, and returned for a key without a policy. */
const DEFAULT_NOTIFY_ACTION: LifetimeActionWire = { trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } };

// ---------------------------------------------------------------------------------------------------------------
// Wire shapes (JSON as the service sends it)

export type KeyType = 'RSA' | 'RSA-HSM' | 'EC' | 'EC-HSM';
export type CurveName = 'P-256' | 'P-384' | 'P-521';
export type RsaKeySize = 2048 | 3072 | 4096;

export interface KeyAttributesWire {
    enabled: boolean;
    /** Not before, epoch seconds. */
    nbf?: number;
    /** Expiry, epoch seconds. */
    exp?: number;
    created: number;
    updated: number;
    recoveryLevel: string;
    recoverableDays?: number;
    exportable?: boolean;
}

/** The public JWK in a key bundle (base64url members; never any private member). */
export interface JsonWebKeyWire {
    kid: string;
    kty: KeyType;
    key_ops: string[];
    n?: string;
    e?: string;
    crv?: CurveName;
    x?: string;
    y?: string;
}

export interface KeyBundleWire {
    key: JsonWebKeyWire;
    attributes: KeyAttributesWire;
    tags?: Record<string, string>;
    managed?: boolean;
}

/** One entry of `GET /keys` (kid without version) or `GET /keys/{name}/versions` (kid with version). */
export interface KeyItemWire {
    kid: string;
    attributes: KeyAttributesWire;
    tags?: Record<string, string>;
    managed?: boolean;
}

export interface LifetimeActionWire {
    trigger: { timeAfterCreate?: string; timeBeforeExpiry?: string };
    action: { type: string };
}

export interface RotationPolicyWire {
    id?: string;
    lifetimeActions: LifetimeActionWire[];
    attributes: { expiryTime?: string; created?: number; updated?: number };
}

// ---------------------------------------------------------------------------------------------------------------
// Seeds

/** One version of a key. Unset fields take the key-level value of the KeySeed, then the defaults. */
export interface KeyVersionSeed {
    /** 32 hex characters by default, like the service's. */
    version?: string;
    enabled?: boolean;
    nbf?: number;
    exp?: number;
    created?: number;
    updated?: number;
    tags?: Record<string, string>;
    /** Defaults: RSA encrypt, decrypt, sign, verify, wrapKey, unwrapKey; EC sign, verify. */
    keyOps?: string[];
    exportable?: boolean;
    /** Key material (a private KeyObject or PEM) of the right type and size. */
    privateKey?: KeyObject | string;
    /**
     * RSA-2048 versions share one process-wide key pair unless this is true (generating RSA keys is slow). Set it
     * when a test must tell versions apart by their key material. Other sizes and EC keys are always fresh.
     */
    freshKey?: boolean;
}

export interface KeySeed extends KeyVersionSeed {
    name: string;
    /** Default RSA. */
    kty?: KeyType;
    /** RSA only; default 2048. */
    keySize?: RsaKeySize;
    /** EC only; default P-256. */
    curve?: CurveName;
    /** True for keys that back a Key Vault certificate. */
    managed?: boolean;
    /** Default from the fake's options (Recoverable+Purgeable / 90). */
    recoveryLevel?: string;
    recoverableDays?: number;
    rotationPolicy?: { lifetimeActions: LifetimeActionWire[]; expiryTime?: string; created?: number; updated?: number };
    /** Versions, oldest first; the last is the current one. Without it the key has one version from the fields above. */
    versions?: KeyVersionSeed[];
}

/** A key as the fake holds it (public parts only), deep-copied. */
export interface FakeKeyState {
    name: string;
    kty: KeyType;
    /** Oldest first; the last is the current version. */
    versions: KeyBundleWire[];
    /** Undefined when no policy was ever set (GET then answers the service default). */
    rotationPolicy: RotationPolicyWire | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests, faults, the fake

export interface KvRecordedRequest {
    method: string;
    /** The URL path as sent (percent-encoded), without the query. */
    path: string;
    /** The raw query string as sent, without '?' (the SDK sends the key as `api%2Dversion`). */
    rawQuery: string;
    /** Decoded query parameters (URLSearchParams), e.g. `api-version`, `maxresults`, `$skiptoken`. */
    query: Record<string, string>;
    apiVersion: string | undefined;
    /** The Authorization header as sent, if any. */
    authorization: string | undefined;
    /** The parsed JSON body; the raw text if it was not JSON; undefined if there was none. */
    body: unknown;
    /** The status the fake answered with (0 while in progress or if the client went away first). */
    status: number;
    fault?: KvFault;
}

export interface KvFaultMatch {
    /** HTTP method, case-insensitive. */
    method?: string;
    /** A substring of the decoded URL path, case-insensitive (e.g. '/sign', '/keys/ack'). */
    pathIncludes?: string;
}

/**
 * A fault for the next `times` (default 1) matching authenticated requests. Status faults answer instead of the
 * service (no effect on state); a delay fault holds the request for `delayMs` and then lets the service handle it.
 * A 403 fault looks like an RBAC denial (`ForbiddenByRbac`), with `reason: 'accessPolicy'` like an access-policy
 * denial (`AccessDenied`), or with `reason: 'firewall'` like the vault firewall refusing the caller's address
 * (`ForbiddenByFirewall`: what a Function app without VNet integration gets from a vault with `defaultAction: Deny`,
 * Functions not being a Key Vault trusted service; deployment-contracts.md, "ARM and Key Vault").
 */
export type KvFault = { match?: KvFaultMatch; times?: number } & (
    | { status: 429; retryAfterSeconds?: number }
    | { status: 500 | 502 | 503 }
    | { status: 403; reason?: 'rbac' | 'accessPolicy' | 'firewall' }
    | { delayMs: number }
);

export interface KeyVaultKeysFakeOptions {
    keys?: KeySeed[];
    /** The bearer token accepted (default FAKE_KV_TOKEN). */
    token?: string;
    /** The tenant named in the 401 challenge (default FAKE_KV_TENANT_ID). */
    tenantId?: string;
    /** Page size of list operations when the request has no `maxresults` (default 25, the service's). */
    pageSize?: number;
    /** Vault-wide defaults for key attributes (soft-delete settings). */
    recoveryLevel?: string;
    recoverableDays?: number;
}

export interface KeyVaultKeysFake {
    /** https://localhost:PORT */
    readonly url: string;
    /** The vault URL to give KeyClient (the same as `url`): key ids are `${vaultUrl}/keys/{name}/{version}`. */
    readonly vaultUrl: string;
    /** The CA that signed the fake's certificate: pass it as `tlsOptions: { ca }` (see keysClientOptionsFor). */
    readonly caPem: string;
    readonly tenantId: string;
    /** The bearer token the fake accepts. */
    readonly token: string;
    /** Every request received, in order. */
    readonly requests: readonly KvRecordedRequest[];
    /** Creates or replaces a key (all versions); returns the current version's bundle. */
    setKey(seed: KeySeed): Promise<KeyBundleWire>;
    /** Adds a new current version to an existing key (like a rotation); returns its bundle. */
    addKeyVersion(name: string, seed?: KeyVersionSeed): Promise<KeyBundleWire>;
    /** Removes a key (no soft-delete modelled). */
    removeKey(name: string): void;
    /** The key's state; throws if there is none. */
    key(name: string): FakeKeyState;
    /** The bundle GET would return (current version by default); throws if there is none. */
    keyBundle(name: string, version?: string): KeyBundleWire;
    /** The public key of a version (current by default), e.g. to verify a signature without calling getKey. */
    publicKey(name: string, version?: string): KeyObject;
    inject(fault: KvFault): void;
    /** How many injected fault uses are still pending. */
    pendingFaults(): number;
    clearFaults(): void;
    /** Empties `requests`. */
    clearLog(): void;
    close(): Promise<void>;
}

/** Retries fast enough for tests; `maxRetries` as the SDK default (3). */
export const FAST_KV_RETRIES = { maxRetries: 3, retryDelayInMs: 1, maxRetryDelayInMs: 5 } as const;

/**
 * Client options for a real KeyClient or CryptographyClient talking to the fake: the test CA for this client only,
 * challenge-resource verification off (the fake is not *.vault.azure.net), fast retries. Production code builds its
 * clients with injectable options; tests pass these (merged with their own `additionalPolicies` etc.).
 */
export function keysClientOptionsFor(
    fake: Pick<KeyVaultKeysFake, 'caPem'>,
    retryOptions: NonNullable<KeyClientOptions['retryOptions']> = FAST_KV_RETRIES,
): KeyClientOptions {
    return {
        tlsOptions: { ca: fake.caPem },
        disableChallengeResourceVerification: true,
        retryOptions: { ...retryOptions },
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Key material and signatures

interface VersionState {
    version: string;
    privateKey: KeyObject;
    publicKey: KeyObject;
    jwk: { n?: string; e?: string; crv?: CurveName; x?: string; y?: string };
    keyOps: string[];
    attributes: KeyAttributesWire;
    tags: Record<string, string> | undefined;
}

interface KeyState {
    name: string;
    kty: KeyType;
    keySize: RsaKeySize | undefined;
    curve: CurveName | undefined;
    managed: boolean | undefined;
    recoveryLevel: string;
    recoverableDays: number | undefined;
    versions: VersionState[];
    rotationPolicy: RotationPolicyWire | undefined;
}

const generateKeyPairAsync = promisify(generateKeyPair);

// On globalThis rather than in a module variable: jest gives each test file its own module registry, and the point
// is to pay for RSA key generation once per worker process (as selfSignedCa does for the CA).
const RSA_CACHE_KEY = Symbol.for('kv-responder.test.kvFakeRsa2048');

function sharedRsa2048(): Promise<KeyObject> {
    const store = globalThis as unknown as Record<symbol, Promise<KeyObject> | undefined>;
    let cached = store[RSA_CACHE_KEY];
    if (cached === undefined) {
        cached = generateKeyPairAsync('rsa', { modulusLength: 2048 }).then((p) => p.privateKey);
        cached.catch(() => {
            if (store[RSA_CACHE_KEY] === cached) store[RSA_CACHE_KEY] = undefined;
        });
        store[RSA_CACHE_KEY] = cached;
    }
    return cached;
}

const NODE_CURVE: Record<CurveName, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/** Curve parameters for ECDSA over a pre-computed digest (node:crypto only signs and verifies messages). */
interface Curve {
    p: bigint;
    a: bigint;
    n: bigint;
    bytes: number;
}

function hexBig(hex: string): bigint {
    return BigInt(`0x${hex.replace(/\s+/g, '')}`);
}

// SEC 2 / FIPS 186-4 domain parameters: p and the group order n (a = p - 3 on all three curves). A wrong constant
// cannot go unnoticed: the tests verify the fake's ES signatures with node:crypto.
const CURVES: Record<CurveName, Curve> = {
    'P-256': {
        p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
        a: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 4n,
        n: hexBig('FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551'),
        bytes: 32,
    },
    'P-384': {
        p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
        a: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 4n,
        n: hexBig('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973'),
        bytes: 48,
    },
    'P-521': {
        p: 2n ** 521n - 1n,
        a: 2n ** 521n - 4n,
        n: hexBig(
            '01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409',
        ),
        bytes: 66,
    },
};

function mod(a: bigint, m: bigint): bigint {
    const r = a % m;
    return r < 0n ? r + m : r;
}

function modInverse(a: bigint, m: bigint): bigint {
    let [oldR, r] = [mod(a, m), m];
    let [oldS, s] = [1n, 0n];
    while (r !== 0n) {
        const q = oldR / r;
        [oldR, r] = [r, oldR - q * r];
        [oldS, s] = [s, oldS - q * s];
    }
    return mod(oldS, m);
}

function bigFromBytes(b: Buffer): bigint {
    return b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`);
}

function bigToBytes(v: bigint, len: number): Buffer {
    return Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');
}

type Point = { x: bigint; y: bigint } | null;

function pointAdd(c: Curve, P: Point, Q: Point): Point {
    if (P === null) return Q;
    if (Q === null) return P;
    let lambda: bigint;
    if (P.x === Q.x) {
        if (mod(P.y + Q.y, c.p) === 0n) return null;
        lambda = mod((3n * P.x * P.x + c.a) * modInverse(2n * P.y, c.p), c.p);
    } else {
        lambda = mod((Q.y - P.y) * modInverse(Q.x - P.x, c.p), c.p);
    }
    const x = mod(lambda * lambda - P.x - Q.x, c.p);
    return { x, y: mod(lambda * (P.x - x) - P.y, c.p) };
}

function pointMultiply(c: Curve, k: bigint, P: Point): Point {
    let result: Point = null;
    let addend = P;
    for (let e = k; e > 0n; e >>= 1n) {
        if (e & 1n) result = pointAdd(c, result, addend);
        addend = pointAdd(c, addend, addend);
    }
    return result;
}

/** k·G, computed by OpenSSL through ECDH (the public key of private scalar k). */
function baseMultiply(curve: CurveName, k: bigint): { x: bigint; y: bigint } {
    const c = CURVES[curve];
    const ecdh = createECDH(NODE_CURVE[curve]);
    ecdh.setPrivateKey(bigToBytes(k, c.bytes));
    const pub = ecdh.getPublicKey(); // 0x04 || X || Y
    return { x: bigFromBytes(pub.subarray(1, 1 + c.bytes)), y: bigFromBytes(pub.subarray(1 + c.bytes)) };
}

/** ECDSA over a digest; the signature is r || s (IEEE P1363), as Key Vault returns it. */
function ecdsaSign(curve: CurveName, privateKey: KeyObject, digest: Buffer): Buffer {
    const c = CURVES[curve];
    const d = bigFromBytes(Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url'));
    const e = bigFromBytes(digest); // digest bits <= order bits for ES256/P-256, ES384/P-384, ES512/P-521
    for (;;) {
        const k = mod(bigFromBytes(randomBytes(c.bytes + 8)), c.n - 1n) + 1n;
        const r = mod(baseMultiply(curve, k).x, c.n);
        if (r === 0n) continue;
        const s = mod(modInverse(k, c.n) * (e + r * d), c.n);
        if (s === 0n) continue;
        return Buffer.concat([bigToBytes(r, c.bytes), bigToBytes(s, c.bytes)]);
    }
}

function ecdsaVerify(curve: CurveName, publicKey: KeyObject, digest: Buffer, signature: Buffer): boolean {
    const c = CURVES[curve];
    if (signature.length !== 2 * c.bytes) return false;
    const r = bigFromBytes(signature.subarray(0, c.bytes));
    const s = bigFromBytes(signature.subarray(c.bytes));
    if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false;
    const jwk = publicKey.export({ format: 'jwk' });
    const Q = {
        x: bigFromBytes(Buffer.from(jwk.x ?? '', 'base64url')),
        y: bigFromBytes(Buffer.from(jwk.y ?? '', 'base64url')),
    };
    const w = modInverse(s, c.n);
    const u1 = mod(bigFromBytes(digest) * w, c.n);
    const u2 = mod(r * w, c.n);
    const R = pointAdd(c, u1 === 0n ? null : baseMultiply(curve, u1), pointMultiply(c, u2, Q));
    return R !== null && mod(R.x, c.n) === r;
}

/** DER DigestInfo prefixes (RFC 8017 9.2 note 1): PKCS#1 v1.5 signs DigestInfo(hash) || digest. */
const DIGEST_INFO: Record<string, Buffer> = {
    sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
    sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
    sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

interface SignAlgorithm {
    family: 'RS' | 'PS' | 'ES';
    hash: 'sha256' | 'sha384' | 'sha512';
    digestLength: number;
    curve?: CurveName;
}

const SIGN_ALGORITHMS: Record<string, SignAlgorithm> = {
    RS256: { family: 'RS', hash: 'sha256', digestLength: 32 },
    RS384: { family: 'RS', hash: 'sha384', digestLength: 48 },
    RS512: { family: 'RS', hash: 'sha512', digestLength: 64 },
    PS256: { family: 'PS', hash: 'sha256', digestLength: 32 },
    PS384: { family: 'PS', hash: 'sha384', digestLength: 48 },
    PS512: { family: 'PS', hash: 'sha512', digestLength: 64 },
    ES256: { family: 'ES', hash: 'sha256', digestLength: 32, curve: 'P-256' },
    ES384: { family: 'ES', hash: 'sha384', digestLength: 48, curve: 'P-384' },
    ES512: { family: 'ES', hash: 'sha512', digestLength: 64, curve: 'P-521' },
};

function mgf1(hash: string, seed: Buffer, length: number): Buffer {
    const out: Buffer[] = [];
    let total = 0;
    for (let counter = 0; total < length; counter++) {
        const c = Buffer.alloc(4);
        c.writeUInt32BE(counter);
        const block = createHash(hash).update(seed).update(c).digest();
        out.push(block);
        total += block.length;
    }
    return Buffer.concat(out).subarray(0, length);
}

function xorInto(target: Buffer, mask: Buffer): void {
    for (let i = 0; i < target.length; i++) target[i] = (target[i] ?? 0) ^ (mask[i] ?? 0);
}

function modulusBits(key: KeyObject): number {
    const bits = key.asymmetricKeyDetails?.modulusLength;
    if (bits === undefined) throw new Error('keyVaultKeysFake: not an RSA key');
    return bits;
}

/** RSASSA-PSS (RFC 8017 8.1) over a digest, salt length = hash length, MGF1 with the same hash. */
function pssSign(privateKey: KeyObject, hash: string, digest: Buffer): Buffer {
    const modBits = modulusBits(privateKey);
    const emBits = modBits - 1;
    const emLen = Math.ceil(emBits / 8);
    const k = Math.ceil(modBits / 8);
    const hLen = digest.length;
    const salt = randomBytes(hLen);
    const h = createHash(hash)
        .update(Buffer.concat([Buffer.alloc(8), digest, salt]))
        .digest();
    const db = Buffer.concat([Buffer.alloc(emLen - 2 * hLen - 2), Buffer.from([1]), salt]);
    xorInto(db, mgf1(hash, h, emLen - hLen - 1));
    db[0] = (db[0] ?? 0) & (0xff >> (8 * emLen - emBits));
    const em = Buffer.concat([Buffer.alloc(k - emLen), db, h, Buffer.from([0xbc])]);
    return privateEncrypt({ key: privateKey, padding: cryptoConstants.RSA_NO_PADDING }, em);
}

function pssVerify(publicKey: KeyObject, hash: string, digest: Buffer, signature: Buffer): boolean {
    const modBits = modulusBits(publicKey);
    const emBits = modBits - 1;
    const emLen = Math.ceil(emBits / 8);
    const k = Math.ceil(modBits / 8);
    const hLen = digest.length;
    if (signature.length !== k) return false;
    let decoded: Buffer;
    try {
        decoded = publicDecrypt({ key: publicKey, padding: cryptoConstants.RSA_NO_PADDING }, signature);
    } catch {
        return false;
    }
    const em = decoded.subarray(decoded.length - emLen);
    if (decoded.subarray(0, decoded.length - emLen).some((b) => b !== 0)) return false;
    if (emLen < 2 * hLen + 2 || em[emLen - 1] !== 0xbc) return false;
    const db = Buffer.from(em.subarray(0, emLen - hLen - 1));
    const h = em.subarray(emLen - hLen - 1, emLen - 1);
    const topMask = 0xff >> (8 * emLen - emBits);
    if (((db[0] ?? 0) & ~topMask) !== 0) return false;
    xorInto(db, mgf1(hash, h, emLen - hLen - 1));
    db[0] = (db[0] ?? 0) & topMask;
    const psLen = emLen - 2 * hLen - 2;
    if (db.subarray(0, psLen).some((b) => b !== 0) || db[psLen] !== 1) return false;
    const salt = db.subarray(psLen + 1);
    const expected = createHash(hash)
        .update(Buffer.concat([Buffer.alloc(8), digest, salt]))
        .digest();
    return timingSafeEqual(expected, h);
}

function pkcs1Sign(privateKey: KeyObject, hash: string, digest: Buffer): Buffer {
    const prefix = DIGEST_INFO[hash] ?? Buffer.alloc(0);
    return privateEncrypt(
        { key: privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING },
        Buffer.concat([prefix, digest]),
    );
}

function pkcs1Verify(publicKey: KeyObject, hash: string, digest: Buffer, signature: Buffer): boolean {
    const expected = Buffer.concat([DIGEST_INFO[hash] ?? Buffer.alloc(0), digest]);
    try {
        const recovered = publicDecrypt({ key: publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, signature);
        return recovered.length === expected.length && timingSafeEqual(recovered, expected);
    } catch {
        return false;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function nowSeconds(): number {
    return Math.floor(Date.now() / 1000);
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isRsa(kty: KeyType): boolean {
    return kty === 'RSA' || kty === 'RSA-HSM';
}

function safeDecode(segment: string): string {
    try {
        return decodeURIComponent(segment);
    } catch {
        return segment;
    }
}

function faultMatches(fault: KvFault, method: string, decodedPath: string): boolean {
    const m = fault.match;
    if (m?.method !== undefined && m.method.toUpperCase() !== method.toUpperCase()) return false;
    if (m?.pathIncludes !== undefined && !decodedPath.toLowerCase().includes(m.pathIncludes.toLowerCase())) {
        return false;
    }
    return true;
}

interface KvError {
    status: number;
    code: string;
    message: string;
    innerCode?: string;
    headers?: Record<string, string>;
}

class KvRequestError extends Error {
    constructor(readonly error: KvError) {
        super(error.message);
    }
}

function badParameter(message: string): KvRequestError {
    return new KvRequestError({ status: 400, code: 'BadParameter', message });
}

function keyNotFound(nameOrId: string): KvRequestError {
    // Verbatim service text (Azure/azure-sdk-for-net#22002, sigstore/cosign#3094).
    return new KvRequestError({
        status: 404,
        code: 'KeyNotFound',
        message: `A key with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    });
}

function decodeBase64Url(value: unknown, field: string): Buffer {
    if (typeof value !== 'string' || !BASE64URL.test(value)) {
        throw badParameter(`Property '${field}' must be a base64url-encoded string.`); // fake wording
    }
    return Buffer.from(value, 'base64url');
}

function encodeSkipToken(offset: number): string {
    return Buffer.from(JSON.stringify({ NextMarker: offset }), 'utf8').toString('base64url');
}

function decodeSkipToken(token: string): number {
    try {
        const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { NextMarker?: unknown };
        if (typeof parsed.NextMarker === 'number' && Number.isInteger(parsed.NextMarker) && parsed.NextMarker >= 0) {
            return parsed.NextMarker;
        }
    } catch {
        // fall through
    }
    throw badParameter(`The $skiptoken '${token}' is not valid.`); // fake wording
}

// ---------------------------------------------------------------------------------------------------------------
// The server

interface PendingFault {
    fault: KvFault;
    remaining: number;
}

export async function startKeyVaultKeysFake(options: KeyVaultKeysFakeOptions = {}): Promise<KeyVaultKeysFake> {
    const { caPem } = await getTestCa();
    const token = options.token ?? FAKE_KV_TOKEN;
    const tenantId = options.tenantId ?? FAKE_KV_TENANT_ID;
    const pageSize = options.pageSize ?? MAX_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1) {
        throw new Error(`keyVaultKeysFake: pageSize must be a positive integer, got ${pageSize}`);
    }
    const challenge = `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${KEY_VAULT_RESOURCE}"`;

    const keys = new Map<string, KeyState>(); // by lower-case name: Key Vault names are case-insensitive
    const requests: KvRecordedRequest[] = [];
    const faults: PendingFault[] = [];
    const timers = new Set<NodeJS.Timeout>();
    let closed = false;
    let url = ''; // set once listening

    const kidBase = (name: string) => `${url}/keys/${name}`;

    async function materialFor(
        kty: KeyType,
        keySize: RsaKeySize | undefined,
        curve: CurveName | undefined,
        seed: KeyVersionSeed,
    ): Promise<KeyObject> {
        if (seed.privateKey !== undefined) {
            const key = typeof seed.privateKey === 'string' ? createPrivateKey(seed.privateKey) : seed.privateKey;
            const wanted = isRsa(kty) ? 'rsa' : 'ec';
            if (key.type !== 'private' || key.asymmetricKeyType !== wanted) {
                throw new Error(`keyVaultKeysFake: privateKey must be a private ${wanted} key for kty ${kty}`);
            }
            return key;
        }
        if (isRsa(kty)) {
            const bits = keySize ?? 2048;
            if (bits === 2048 && seed.freshKey !== true) return sharedRsa2048();
            return (await generateKeyPairAsync('rsa', { modulusLength: bits })).privateKey;
        }
        return (await generateKeyPairAsync('ec', { namedCurve: NODE_CURVE[curve ?? 'P-256'] })).privateKey;
    }

    async function buildVersion(key: KeyState, seed: KeyVersionSeed, defaults: KeyVersionSeed): Promise<VersionState> {
        const pick = <K extends keyof KeyVersionSeed>(k: K): KeyVersionSeed[K] => seed[k] ?? defaults[k];
        const material: KeyVersionSeed = {};
        const given = pick('privateKey');
        const fresh = pick('freshKey');
        if (given !== undefined) material.privateKey = given;
        if (fresh !== undefined) material.freshKey = fresh;
        const privateKey = await materialFor(key.kty, key.keySize, key.curve, material);
        const publicKey = createPublicKey(privateKey);
        const exported = publicKey.export({ format: 'jwk' });
        const jwk = isRsa(key.kty)
            ? { n: exported.n ?? '', e: exported.e ?? '' }
            : { crv: key.curve ?? 'P-256', x: exported.x ?? '', y: exported.y ?? '' };
        if (isRsa(key.kty) && key.keySize !== undefined && modulusBits(privateKey) !== key.keySize) {
            throw new Error(`keyVaultKeysFake: privateKey of ${key.name} is not ${key.keySize} bits`);
        }
        if (!isRsa(key.kty) && exported.crv !== key.curve) {
            throw new Error(`keyVaultKeysFake: privateKey of ${key.name} is not on ${key.curve}`);
        }
        const created = pick('created') ?? nowSeconds();
        const attributes: KeyAttributesWire = {
            enabled: pick('enabled') ?? true,
            created,
            updated: pick('updated') ?? created,
            recoveryLevel: key.recoveryLevel,
        };
        const nbf = pick('nbf');
        const exp = pick('exp');
        if (nbf !== undefined) attributes.nbf = nbf;
        if (exp !== undefined) attributes.exp = exp;
        if (key.recoverableDays !== undefined) attributes.recoverableDays = key.recoverableDays;
        const exportable = pick('exportable');
        if (exportable !== undefined) attributes.exportable = exportable;
        const version = seed.version ?? randomUUID().replace(/-/g, '');
        if (key.versions.some((v) => v.version === version)) {
            throw new Error(`keyVaultKeysFake: ${key.name} already has a version ${version}`);
        }
        const tags = pick('tags');
        return {
            version,
            privateKey,
            publicKey,
            jwk,
            keyOps: [
                ...(pick('keyOps') ??
                    (isRsa(key.kty)
                        ? ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey']
                        : ['sign', 'verify'])),
            ],
            attributes,
            tags: tags === undefined ? undefined : { ...tags },
        };
    }

    async function setKey(seed: KeySeed): Promise<KeyBundleWire> {
        if (!KEY_NAME.test(seed.name)) throw new Error(`keyVaultKeysFake: invalid key name '${seed.name}'`);
        const kty = seed.kty ?? 'RSA';
        if (isRsa(kty) && seed.curve !== undefined) throw new Error('keyVaultKeysFake: curve is for EC keys');
        if (!isRsa(kty) && seed.keySize !== undefined) throw new Error('keyVaultKeysFake: keySize is for RSA keys');
        const key: KeyState = {
            name: seed.name,
            kty,
            keySize: isRsa(kty) ? (seed.keySize ?? 2048) : undefined,
            curve: isRsa(kty) ? undefined : (seed.curve ?? 'P-256'),
            managed: seed.managed,
            recoveryLevel: seed.recoveryLevel ?? options.recoveryLevel ?? 'Recoverable+Purgeable',
            recoverableDays: seed.recoverableDays ?? options.recoverableDays ?? 90,
            versions: [],
            rotationPolicy: undefined,
        };
        const versionSeeds = seed.versions ?? [seed.version === undefined ? {} : { version: seed.version }];
        if (versionSeeds.length === 0) throw new Error('keyVaultKeysFake: a key needs at least one version');
        const base = nowSeconds() - versionSeeds.length;
        for (const [i, v] of versionSeeds.entries()) {
            // Versions without explicit times are a second apart, oldest first.
            const created = v.created ?? seed.created ?? base + i;
            key.versions.push(await buildVersion(key, { ...v, created }, seed));
        }
        if (seed.rotationPolicy !== undefined) {
            const now = nowSeconds();
            key.rotationPolicy = {
                id: `${kidBase(key.name)}/rotationpolicy`,
                lifetimeActions: structuredClone(seed.rotationPolicy.lifetimeActions),
                attributes: {
                    ...(seed.rotationPolicy.expiryTime === undefined
                        ? {}
                        : { expiryTime: seed.rotationPolicy.expiryTime }),
                    created: seed.rotationPolicy.created ?? now,
                    updated: seed.rotationPolicy.updated ?? seed.rotationPolicy.created ?? now,
                },
            };
        }
        keys.set(key.name.toLowerCase(), key);
        return bundleOf(key, currentVersion(key));
    }

    function findKey(name: string): KeyState | undefined {
        return keys.get(name.toLowerCase());
    }

    function requireKey(name: string): KeyState {
        const k = findKey(name);
        if (k === undefined) throw new Error(`keyVaultKeysFake: no key ${name}`);
        return k;
    }

    function currentVersion(key: KeyState): VersionState {
        const v = key.versions[key.versions.length - 1];
        if (v === undefined) throw new Error(`keyVaultKeysFake: ${key.name} has no versions`);
        return v;
    }

    /** The version named (case-insensitively), or the current one for '' / undefined. */
    function findVersion(key: KeyState, version: string | undefined): VersionState | undefined {
        if (version === undefined || version === '') return currentVersion(key);
        return key.versions.find((v) => v.version.toLowerCase() === version.toLowerCase());
    }

    function resolve(name: string, version: string | undefined): { key: KeyState; version: VersionState } {
        const key = findKey(name);
        if (key === undefined) throw keyNotFound(name);
        const v = findVersion(key, version);
        if (v === undefined) throw keyNotFound(`${name}/${version ?? ''}`);
        return { key, version: v };
    }

    function bundleOf(key: KeyState, v: VersionState): KeyBundleWire {
        const bundle: KeyBundleWire = {
            key: { kid: `${kidBase(key.name)}/${v.version}`, kty: key.kty, key_ops: [...v.keyOps], ...v.jwk },
            attributes: { ...v.attributes },
        };
        if (v.tags !== undefined) bundle.tags = { ...v.tags };
        if (key.managed !== undefined) bundle.managed = key.managed;
        return bundle;
    }

    function itemOf(key: KeyState, v: VersionState, withVersion: boolean): KeyItemWire {
        const item: KeyItemWire = {
            kid: withVersion ? `${kidBase(key.name)}/${v.version}` : kidBase(key.name),
            attributes: { ...v.attributes },
        };
        if (v.tags !== undefined) item.tags = { ...v.tags };
        if (key.managed !== undefined) item.managed = key.managed;
        return item;
    }

    // --- operations -------------------------------------------------------------------------------------------

    function listPage<T>(
        all: T[],
        query: URLSearchParams,
        apiVersion: string,
        path: string,
    ): { value: T[]; nextLink: string | null } {
        const maxParam = query.get('maxresults');
        let size = pageSize;
        let max: number | undefined;
        if (maxParam !== null && maxParam !== '') {
            max = Number(maxParam);
            if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE_SIZE) {
                throw badParameter(`maxresults must be an integer between 1 and ${MAX_PAGE_SIZE}.`); // fake wording
            }
            size = max;
        }
        const skip = query.get('$skiptoken');
        const offset = skip === null || skip === '' ? 0 : decodeSkipToken(skip);
        const value = all.slice(offset, offset + size);
        const next = offset + size;
        if (next >= all.length) return { value, nextLink: null };
        // As the service does: absolute, the api-version spelled plainly, the page size carried along.
        const params = [`api-version=${apiVersion}`, `$skiptoken=${encodeSkipToken(next)}`];
        if (max !== undefined) params.push(`maxresults=${max}`);
        return { value, nextLink: `${url}${path}?${params.join('&')}` };
    }

    function updateKey(key: KeyState, v: VersionState, body: unknown): KeyBundleWire {
        if (!isObject(body)) throw badParameter('The request body must be a JSON object.'); // fake wording
        const { attributes, tags, key_ops: keyOps } = body;
        const next = { ...v.attributes };
        if (attributes !== undefined && attributes !== null) {
            if (!isObject(attributes)) throw badParameter("Property 'attributes' must be an object.");
            for (const [field, value] of Object.entries(attributes)) {
                if (value === undefined) continue;
                if (field === 'enabled' || field === 'exportable') {
                    if (value === null) continue;
                    if (typeof value !== 'boolean')
                        throw badParameter(`Property 'attributes.${field}' must be a boolean.`);
                    next[field] = value;
                } else if (field === 'nbf' || field === 'exp') {
                    // null clears the date (inference: JSON merge semantics; the SDK never sends null).
                    if (value === null) delete next[field];
                    else if (typeof value === 'number' && Number.isInteger(value)) next[field] = value;
                    else throw badParameter(`Property 'attributes.${field}' must be an integer (epoch seconds).`);
                } else if (field === 'created' || field === 'updated' || field === 'recoveryLevel') {
                    continue; // read-only, ignored
                } else {
                    throw badParameter(`Unknown property 'attributes.${field}'.`);
                }
            }
        }
        if (tags !== undefined && tags !== null) {
            if (!isObject(tags) || !Object.values(tags).every((t) => typeof t === 'string')) {
                throw badParameter("Property 'tags' must be an object of strings.");
            }
        }
        if (keyOps !== undefined && keyOps !== null) {
            if (!Array.isArray(keyOps) || !keyOps.every((o) => typeof o === 'string')) {
                throw badParameter("Property 'key_ops' must be an array of strings.");
            }
        }
        next.updated = Math.max(nowSeconds(), v.attributes.updated);
        v.attributes = next;
        if (isObject(tags)) v.tags = { ...(tags as Record<string, string>) }; // tags replace the whole set
        if (Array.isArray(keyOps)) v.keyOps = keyOps.map(String);
        return bundleOf(key, v);
    }

    /** Why the service refuses a private-key operation on this version now, if it does. */
    function refusal(key: KeyState, v: VersionState, op: 'sign'): KvError | undefined {
        const kid = `${kidBase(key.name)}/${v.version}`;
        if (!v.attributes.enabled) {
            // 403 Forbidden / KeyDisabled: the service refuses sign, decrypt and unwrapKey on a disabled key
            // (Azure/azure-sdk-for-python#45342, observed live: "Operation X is not allowed on a disabled key
            // (KeyDisabled)"; the sentence form as for secrets, Azure/azure-sdk-for-js#24756).
            return {
                status: 403,
                code: 'Forbidden',
                message: `Operation ${op} is not allowed on a disabled key.`,
                innerCode: 'KeyDisabled',
            };
        }
        const now = nowSeconds();
        if (v.attributes.exp !== undefined && now > v.attributes.exp) {
            return {
                status: 403,
                code: 'Forbidden',
                message: `Operation ${op} is not allowed on an expired key.`, // fake wording
                innerCode: 'KeyExpired', // fake wording
            };
        }
        if (v.attributes.nbf !== undefined && now < v.attributes.nbf) {
            return {
                status: 403,
                code: 'Forbidden',
                message: `Operation ${op} is not allowed on a key that is not yet valid.`, // fake wording
                innerCode: 'KeyNotYetValid', // fake wording
            };
        }
        if (!v.keyOps.includes(op)) {
            return {
                status: 403,
                code: 'Forbidden',
                message: `Operation ${op} is not permitted on key ${kid}.`, // fake wording
            };
        }
        return undefined;
    }

    function algorithmFor(key: KeyState, alg: unknown): SignAlgorithm {
        const a = typeof alg === 'string' ? SIGN_ALGORITHMS[alg] : undefined;
        if (a === undefined) throw badParameter(`Invalid algorithm: ${String(alg)}.`); // fake wording
        if (isRsa(key.kty) !== (a.family !== 'ES') || (a.curve !== undefined && a.curve !== key.curve)) {
            throw badParameter(`Algorithm ${String(alg)} is not supported by key ${key.name} (${key.kty}).`); // fake wording
        }
        return a;
    }

    function sign(key: KeyState, v: VersionState, body: unknown): { kid: string; value: string } {
        if (!isObject(body)) throw badParameter('The request body must be a JSON object.');
        const a = algorithmFor(key, body.alg);
        const digest = decodeBase64Url(body.value, 'value');
        if (digest.length !== a.digestLength) {
            throw badParameter(`Invalid digest length ${digest.length} for ${String(body.alg)}.`); // fake wording
        }
        const refused = refusal(key, v, 'sign');
        if (refused !== undefined) throw new KvRequestError(refused);
        const signature =
            a.family === 'RS'
                ? pkcs1Sign(v.privateKey, a.hash, digest)
                : a.family === 'PS'
                  ? pssSign(v.privateKey, a.hash, digest)
                  : ecdsaSign(key.curve ?? 'P-256', v.privateKey, digest);
        return { kid: `${kidBase(key.name)}/${v.version}`, value: signature.toString('base64url') };
    }

    function verify(key: KeyState, v: VersionState, body: unknown): { value: boolean } {
        // Verify uses the public key and is allowed on a disabled key (Azure/azure-sdk-for-python#45342).
        if (!isObject(body)) throw badParameter('The request body must be a JSON object.');
        const a = algorithmFor(key, body.alg);
        const digest = decodeBase64Url(body.digest, 'digest');
        const signature = decodeBase64Url(body.value, 'value');
        if (digest.length !== a.digestLength) {
            throw badParameter(`Invalid digest length ${digest.length} for ${String(body.alg)}.`); // fake wording
        }
        const ok =
            a.family === 'RS'
                ? pkcs1Verify(v.publicKey, a.hash, digest, signature)
                : a.family === 'PS'
                  ? pssVerify(v.publicKey, a.hash, digest, signature)
                  : ecdsaVerify(key.curve ?? 'P-256', v.publicKey, digest, signature);
        return { value: ok };
    }

    function setRotationPolicy(key: KeyState, body: unknown): RotationPolicyWire {
        if (!isObject(body)) throw badParameter('The request body must be a JSON object.');
        const actions = body.lifetimeActions ?? [];
        if (!Array.isArray(actions)) throw badParameter("Property 'lifetimeActions' must be an array.");
        const lifetimeActions: LifetimeActionWire[] = [];
        for (const a of actions) {
            const type = isObject(a) && isObject(a.action) ? a.action.type : undefined;
            const trigger = isObject(a) && isObject(a.trigger) ? a.trigger : undefined;
            if (typeof type !== 'string' || !['rotate', 'notify'].includes(type.toLowerCase()) || !trigger) {
                throw badParameter('Each lifetime action needs a trigger and an action of type Rotate or Notify.');
            }
            const t: LifetimeActionWire['trigger'] = {};
            if (typeof trigger.timeAfterCreate === 'string') t.timeAfterCreate = trigger.timeAfterCreate;
            if (typeof trigger.timeBeforeExpiry === 'string') t.timeBeforeExpiry = trigger.timeBeforeExpiry;
            if ((t.timeAfterCreate === undefined) === (t.timeBeforeExpiry === undefined)) {
                throw badParameter('A trigger needs exactly one of timeAfterCreate and timeBeforeExpiry.');
            }
            lifetimeActions.push({
                trigger: t,
                action: { type: type.toLowerCase() === 'rotate' ? 'Rotate' : 'Notify' },
            });
        }
        // Observed in live recordings (Azure/azure-sdk-for-js keys_client ... key_rotation): a policy without a Notify
        // action comes back with the default `Notify 30 days before expiry` appended.
        if (!lifetimeActions.some((a) => a.action.type === 'Notify')) {
            lifetimeActions.push(structuredClone(DEFAULT_NOTIFY_ACTION));
        }
        const attrs = isObject(body.attributes) ? body.attributes : {};
        const now = nowSeconds();
        key.rotationPolicy = {
            id: `${kidBase(key.name)}/rotationpolicy`,
            lifetimeActions,
            attributes: {
                ...(typeof attrs.expiryTime === 'string' ? { expiryTime: attrs.expiryTime } : {}),
                created: key.rotationPolicy?.attributes.created ?? now,
                updated: now,
            },
        };
        return structuredClone(key.rotationPolicy);
    }

    function getRotationPolicy(key: KeyState): RotationPolicyWire {
        if (key.rotationPolicy !== undefined) return structuredClone(key.rotationPolicy);
        // A key that never had a policy: 200 with the default policy, no id and no dates (Azure/azure-powershell
        // src/KeyVault/KeyVault/help/Get-AzKeyVaultKeyRotationPolicy.md example output: Id empty, LifetimeActions
        // "Action: Notify, TimeBeforeExpiry: P30D", ExpiresIn/CreatedOn/UpdatedOn empty).
        return { lifetimeActions: [structuredClone(DEFAULT_NOTIFY_ACTION)], attributes: {} };
    }

    // --- HTTP ---------------------------------------------------------------------------------------------------

    function send(res: ServerResponse, record: KvRecordedRequest, status: number, body: unknown, headers = {}): void {
        record.status = status;
        res.writeHead(status, {
            'content-type': 'application/json; charset=utf-8',
            'cache-control': 'no-cache',
            'x-ms-request-id': randomUUID(),
            'x-ms-keyvault-region': 'localfake',
            'x-ms-keyvault-service-version': 'fake',
            ...headers,
        });
        res.end(body === undefined ? '' : JSON.stringify(body));
    }

    function sendError(res: ServerResponse, record: KvRecordedRequest, e: KvError): void {
        const error: Record<string, unknown> = { code: e.code, message: e.message };
        if (e.innerCode !== undefined) error.innerError = { code: e.innerCode };
        send(res, record, e.status, { error }, e.headers);
    }

    function takeFault(method: string, decodedPath: string): KvFault | undefined {
        const pending = faults.find((f) => f.remaining > 0 && faultMatches(f.fault, method, decodedPath));
        if (pending === undefined) return undefined;
        pending.remaining -= 1;
        if (pending.remaining === 0) faults.splice(faults.indexOf(pending), 1);
        return pending.fault;
    }

    function faultError(fault: Exclude<KvFault, { delayMs: number }>, decodedPath: string): KvError {
        switch (fault.status) {
            case 429:
                // Status and the Retry-After contract from the service-limits docs; code and text are fake wording.
                return {
                    status: 429,
                    code: 'Throttled',
                    message:
                        'Request was not processed because too many requests were received. (fault injected by the test)',
                    ...(fault.retryAfterSeconds === undefined
                        ? {}
                        : { headers: { 'retry-after': String(fault.retryAfterSeconds) } }),
                };
            case 403:
                // The firewall's answer to a caller outside the network rules (Key Vault network security docs:
                // "Client address is not authorized and caller is not a trusted service", inner code
                // ForbiddenByFirewall).
                if (fault.reason === 'firewall')
                    return {
                        status: 403,
                        code: 'Forbidden',
                        message: `Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.40\r\nCaller: appid=00000000-0000-0000-0000-000000000000;oid=00000000-0000-0000-0000-000000000000;iss=https://sts.windows.net/${tenantId}/\r\nVault: localfake;location=localfake`,
                        innerCode: 'ForbiddenByFirewall',
                    };
                return fault.reason === 'accessPolicy'
                    ? {
                          status: 403,
                          code: 'Forbidden',
                          message: `The user, group or application 'appid=00000000-0000-0000-0000-000000000000;oid=00000000-0000-0000-0000-000000000000;iss=https://sts.windows.net/${tenantId}/' does not have keys permission for ${decodedPath} on this key vault. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
                          innerCode: 'AccessDenied',
                      }
                    : {
                          status: 403,
                          code: 'Forbidden',
                          message: `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nAction: ${decodedPath}\r\nAssignment: (not found)\r\n`,
                          innerCode: 'ForbiddenByRbac',
                      };
            case 500:
            case 502:
            case 503:
                return {
                    status: fault.status,
                    code: fault.status === 503 ? 'ServiceUnavailable' : 'InternalServerError',
                    message: 'The service encountered an internal error. (fault injected by the test)',
                };
        }
    }

    async function handle(req: IncomingMessage, res: ServerResponse, rawBody: string): Promise<void> {
        const target = req.url ?? '/';
        const q = target.indexOf('?');
        const pathname = q < 0 ? target : target.slice(0, q);
        const rawQuery = q < 0 ? '' : target.slice(q + 1);
        const query = new URLSearchParams(rawQuery); // decodes `api%2Dversion` to `api-version`
        const method = (req.method ?? 'GET').toUpperCase();
        // Keep empty segments: `/keys/{name}/` (no version) is how the SDK asks for the current version.
        const segments = pathname.split('/').slice(1).map(safeDecode);
        const decodedPath = `/${segments.join('/')}`;
        const apiVersion = query.get('api-version') ?? undefined;
        let body: unknown;
        if (rawBody.length > 0) {
            try {
                body = JSON.parse(rawBody);
            } catch {
                body = rawBody;
            }
        }
        const record: KvRecordedRequest = {
            method,
            path: pathname,
            rawQuery,
            query: Object.fromEntries(query.entries()),
            apiVersion,
            authorization: req.headers.authorization,
            body,
            status: 0,
        };
        requests.push(record);

        // 1. Authentication: the challenge (azure-contracts.md 3.3). The 401 body and header as recorded live
        //    (Azure/azure-sdk-for-js keyvault-keys recordings).
        const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
        if (auth === null) {
            return sendError(res, record, {
                status: 401,
                code: 'Unauthorized',
                message: 'AKV10000: Request is missing a Bearer or PoP token.',
                headers: { 'www-authenticate': challenge },
            });
        }
        if (auth[1] !== token) {
            return sendError(res, record, {
                status: 401,
                code: 'Unauthorized',
                message:
                    'AKV10046: Unable to resolve the key used for signature validation. (fake: not the token this vault accepts)',
                headers: { 'www-authenticate': challenge },
            });
        }

        // 2. api-version. The unsupported-version text is the service's (Azure/azure-sdk-for-net#14789,
        //    Azure/azure-sdk-for-python#28595); the missing-version text is fake wording.
        if (apiVersion === undefined || apiVersion === '') {
            return sendError(res, record, {
                status: 400,
                code: 'BadParameter',
                message: 'The api-version query parameter is missing.',
            });
        }
        if (!KV_API_VERSIONS.includes(apiVersion)) {
            return sendError(res, record, {
                status: 400,
                code: 'BadParameter',
                message: `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (${KV_API_VERSIONS[KV_API_VERSIONS.length - 1] ?? ''}).`,
            });
        }

        // 3. Injected faults.
        const fault = takeFault(method, decodedPath);
        if (fault !== undefined) {
            record.fault = fault;
            if ('delayMs' in fault) {
                await new Promise<void>((resolveDelay) => {
                    const t = setTimeout(() => {
                        timers.delete(t);
                        resolveDelay();
                    }, fault.delayMs);
                    timers.add(t);
                });
                if (closed) return;
            } else {
                return sendError(res, record, faultError(fault, decodedPath));
            }
        }

        // 4. The operation.
        try {
            const result = route(method, segments, query, apiVersion, body);
            return send(res, record, 200, result);
        } catch (e) {
            if (e instanceof KvRequestError) return sendError(res, record, e.error);
            throw e;
        }
    }

    function route(
        method: string,
        segments: string[],
        query: URLSearchParams,
        apiVersion: string,
        body: unknown,
    ): unknown {
        const [root, name, third, fourth, ...rest] = segments;
        const unsupported = () =>
            new KvRequestError({
                status: 405,
                code: 'UnsupportedByFake',
                message: `${method} /${segments.join('/')} is not modelled by the Key Vault keys fake.`,
            });
        if (root !== 'keys' || rest.length > 0) throw unsupported();

        // GET /keys (and /keys/)
        if (name === undefined || (name === '' && third === undefined)) {
            if (method !== 'GET') throw unsupported();
            const all = [...keys.values()]
                .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()))
                .map((k) => itemOf(k, currentVersion(k), false));
            return listPage(all, query, apiVersion, '/keys');
        }
        if (name === '') throw unsupported();

        // /keys/{name}/versions, /keys/{name}/rotationpolicy
        if (fourth === undefined && third === 'versions') {
            if (method !== 'GET') throw unsupported();
            const key = findKey(name);
            if (key === undefined) throw keyNotFound(name);
            const all = key.versions.map((v) => itemOf(key, v, true));
            return listPage(all, query, apiVersion, `/keys/${key.name}/versions`);
        }
        if (fourth === undefined && third === 'rotationpolicy') {
            const key = findKey(name);
            if (key === undefined) throw keyNotFound(name);
            if (method === 'GET') return getRotationPolicy(key);
            if (method === 'PUT') return setRotationPolicy(key, body);
            throw unsupported();
        }

        // /keys/{name}, /keys/{name}/, /keys/{name}/{version}
        if (fourth === undefined) {
            const { key, version } = resolve(name, third);
            if (method === 'GET') return bundleOf(key, version);
            if (method === 'PATCH') return updateKey(key, version, body);
            throw unsupported();
        }

        // /keys/{name}/{version}/sign|verify (an empty version means the current one)
        if (method === 'POST' && (fourth === 'sign' || fourth === 'verify')) {
            const { key, version } = resolve(name, third);
            return fourth === 'sign' ? sign(key, version, body) : verify(key, version, body);
        }
        throw unsupported();
    }

    const { server, port } = await listenHttps((req, res, raw) => handle(req, res, raw.toString('utf8')));
    url = `https://localhost:${port}`;

    try {
        for (const seed of options.keys ?? []) await setKey(seed);
    } catch (e) {
        server.close();
        throw e;
    }

    return {
        url,
        vaultUrl: url,
        caPem,
        tenantId,
        token,
        requests,
        setKey,
        async addKeyVersion(name, seed = {}) {
            const key = requireKey(name);
            const current = currentVersion(key);
            // A new version inherits nothing but the key type: new material, fresh attributes, no tags.
            const v = await buildVersion(key, seed, {});
            if (seed.created === undefined) {
                v.attributes.created = Math.max(nowSeconds(), current.attributes.created + 1);
                if (seed.updated === undefined) v.attributes.updated = v.attributes.created;
            }
            key.versions.push(v);
            return bundleOf(key, v);
        },
        removeKey(name) {
            requireKey(name);
            keys.delete(name.toLowerCase());
        },
        key(name) {
            const k = requireKey(name);
            return {
                name: k.name,
                kty: k.kty,
                versions: k.versions.map((v) => bundleOf(k, v)),
                rotationPolicy: k.rotationPolicy === undefined ? undefined : structuredClone(k.rotationPolicy),
            };
        },
        keyBundle(name, version) {
            const k = requireKey(name);
            const v = findVersion(k, version);
            if (v === undefined) throw new Error(`keyVaultKeysFake: ${name} has no version ${version ?? ''}`);
            return bundleOf(k, v);
        },
        publicKey(name, version) {
            const k = requireKey(name);
            const v = findVersion(k, version);
            if (v === undefined) throw new Error(`keyVaultKeysFake: ${name} has no version ${version ?? ''}`);
            return v.publicKey;
        },
        inject(fault) {
            const times = fault.times ?? 1;
            if (!Number.isInteger(times) || times < 1) {
                throw new Error(`keyVaultKeysFake: times must be >= 1, got ${times}`);
            }
            faults.push({ fault: structuredClone(fault), remaining: times });
        },
        pendingFaults: () => faults.reduce((n, f) => n + f.remaining, 0),
        clearFaults() {
            faults.length = 0;
        },
        clearLog() {
            requests.length = 0;
        },
        async close() {
            closed = true;
            for (const t of timers) clearTimeout(t);
            timers.clear();
            await new Promise<void>((resolveClose) => {
                server.close(() => resolveClose());
                server.closeAllConnections();
            });
        },
    };
}
