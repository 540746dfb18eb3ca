// A local HTTPS simulation of the Azure Resource Manager Key Vault `vaults` API (Vaults_Get, Vaults_CreateOrUpdate,
// Vaults_Update, Vaults_Delete, Vaults_UpdateAccessPolicy), driven through the real @azure/arm-keyvault client by the
// tests and by `kvr replay --vaults` (which never touches real Azure).
//
// Contract sources: the official OpenAPI definitions of api-version 2026-02-01 (the version @azure/arm-keyvault 5.x
// sends), shipped in ./spec (see spec/SOURCE.md), read at run time: routes, path parameters and request bodies are
// validated by walking those definitions, not a hand-copied schema, and a request is validated against the
// definitions of the api-version it names. Service behaviour the spec does not state is marked as such below, with
// its source; see also shared/docs/azure-contracts.md sections 1 and 2 and shared/docs/deployment-contracts.md.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { dirname, join, posix } from 'node:path';
import { listenHttps } from './httpsFake';
import { getTestCa } from './selfSignedCa';

// ---------------------------------------------------------------------------------------------------------------
// Wire shapes (JSON as the service sends and receives it)

export interface Permissions {
    keys?: string[];
    secrets?: string[];
    certificates?: string[];
    storage?: string[];
}

export interface AccessPolicyEntry {
    tenantId: string;
    objectId: string;
    applicationId?: string;
    permissions: Permissions;
}

export interface IpRule {
    value: string;
}

export interface VirtualNetworkRule {
    id: string;
    ignoreMissingVnetServiceEndpoint?: boolean;
}

export interface NetworkRuleSet {
    bypass?: string;
    defaultAction?: string;
    ipRules?: IpRule[];
    virtualNetworkRules?: VirtualNetworkRule[];
}

export interface VaultProperties {
    tenantId: string;
    sku: { family: string; name: string };
    accessPolicies: AccessPolicyEntry[];
    vaultUri: string;
    networkAcls?: NetworkRuleSet;
    publicNetworkAccess?: string;
    enableRbacAuthorization?: boolean;
    enabledForDeployment?: boolean;
    enabledForDiskEncryption?: boolean;
    enabledForTemplateDeployment?: boolean;
    enableSoftDelete?: boolean;
    softDeleteRetentionInDays?: number;
    enablePurgeProtection?: boolean;
    provisioningState?: string;
    [other: string]: unknown;
}

export interface SystemData {
    createdBy?: string;
    createdByType?: string;
    createdAt?: string;
    lastModifiedBy?: string;
    lastModifiedByType?: string;
    lastModifiedAt?: string;
}

/** A vault as `GET .../vaults/{name}` returns it. */
export interface Vault {
    id: string;
    name: string;
    type: 'Microsoft.KeyVault/vaults';
    location: string;
    tags?: Record<string, string>;
    systemData?: SystemData;
    properties: VaultProperties;
}

/** One request as the fake received it. */
export interface RecordedRequest {
    method: string;
    /** The URL path as sent (still percent-encoded), without the query. */
    path: string;
    apiVersion: string | undefined;
    /** The parsed JSON body; the raw text if it was not JSON; undefined if there was none. */
    body: unknown;
    authorization: string | undefined;
    /** The status the fake answered with (0 while the request is in progress, or if the client went away first). */
    status: number;
    /** The fault that answered, delayed, held or cut this request, if any. */
    fault?: ArmFault;
    /** True when the provider applied the request's change (also when a fault then cut or held the answer). */
    applied?: boolean;
}

/** A request whose content the real service would reject (schema, format or service rule). */
export interface InvalidRequest extends RecordedRequest {
    errors: string[];
}

export interface FaultMatch {
    /** HTTP method, case-insensitive. */
    method?: string;
    /** A substring of the decoded URL path, case-insensitive. */
    pathIncludes?: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Faults
//
// What the real @azure/arm-keyvault 5.0.0 client surfaces for each injectable fault, as asserted by
// test/integration/armFaults.test.ts (client built like shared/app/compositionRoot.ts: `retryOptions.maxRetries: 0`,
// and ArmVaultAdmin passes `abortSignal: AbortSignal.timeout(30 s)` on every call). `RestError` and `AbortError` are
// the classes of @azure/core-rest-pipeline (re-exported from @typespec/ts-http-runtime); RestError.code is the body's
// `error.code` (createRestError in @typespec/ts-http-runtime reads `body.error.code` and no header, so the fake sends
// no `x-ms-error-code`), RestError.details the parsed CloudError.
//
// | fault                                   | SDK throws: name, statusCode, code                        | SDK retries by default? |
// |-----------------------------------------|-----------------------------------------------------------|-------------------------|
// | { status: 400 }                          | RestError, 400, 'BadRequest' (or the `code` given)        | no                      |
// | { status: 401 }                          | RestError, 401, 'InvalidAuthenticationToken'              | no                      |
// | { status: 403 }                          | RestError, 403, 'AuthorizationFailed'                     | no                      |
// | { status: 404 } / deleteVault()          | RestError, 404, 'ResourceNotFound'                        | no                      |
// | { status: 408 }                          | RestError, 408, 'RequestTimeout'                          | yes (exponential)       |
// | { status: 409 }                          | RestError, 409, 'Conflict' (or 'ScopeLocked', ... given)  | no                      |
// | { status: 412 }                          | RestError, 412, 'PreconditionFailed'                      | no                      |
// | { status: 429, retryAfterSeconds: n }    | RestError, 429, 'SubscriptionRequestsThrottled'           | yes, after n s          |
// | { status: 429 } (no Retry-After)         | RestError, 429, 'TooManyRequests'                         | no                      |
// | { status: 500 | 502 | 503 | 504 }        | RestError, 5xx, 'InternalServerError' | 'BadGateway' |     | yes (exponential)       |
// |                                          |   'ServiceUnavailable' | 'GatewayTimeout'                 |                         |
// | { reset: true } (before or after apply) | RestError, statusCode undefined, code 'ECONNRESET'        | yes (system error)      |
// | { reset: true, midBody: true }          | RestError, statusCode undefined, code 'PARSE_ERROR'       | no (!)                  |
// | { hang: true } + caller's abortSignal   | AbortError (name 'AbortError'), no statusCode, no code    | no                      |
// | { delayMs } shorter than the timeout     | nothing: the answer arrives late (the change applies)     | n/a                     |
//
// Default retries (@typespec/ts-http-runtime defaultRetryPolicy, used by @azure/core-rest-pipeline): maxRetries 3;
// throttlingRetryStrategy honours Retry-After / retry-after-ms / x-ms-retry-after-ms on 429 and 503 only;
// exponentialRetryStrategy (1 s base, 64 s cap) retries 408 and every 5xx except 501 and 505, and the system errors
// ETIMEDOUT, ESOCKETTIMEDOUT, ECONNREFUSED, ECONNRESET, ENOENT, ENOTFOUND. A 429 without Retry-After is not retried.
// The composition root turns all of this off (`maxRetries: 0`) and the remediator retries by itself, so the table's
// first column is what the remediator sees. Note what that means for a reset: with the SDK's own retries on, a PATCH
// whose change was applied before the connection dropped is sent again, silently.

/** HTTP statuses a status fault can answer with. */
export type ArmFaultStatus = 400 | 401 | 403 | 404 | 408 | 409 | 412 | 429 | 500 | 502 | 503 | 504;

export interface FaultMatch {
    /** HTTP method, case-insensitive. */
    method?: string;
    /** A substring of the decoded URL path, case-insensitive. */
    pathIncludes?: string;
}

/**
 * A fault for the next `times` (default 1) matching requests. All faults act after authentication and api-version
 * checks, as ARM's own throttling and RBAC do.
 * - `status`: ARM answers with this status and a CloudError body `{ error: { code, message } }` instead of the
 *   provider; the request has no effect. `code`/`message` override the defaults (see `faultError`);
 *   `retryAfterSeconds` adds a `Retry-After` header.
 * - `delayMs`: a slow answer. The request is held for `delayMs` and then handled normally, so a client that timed out
 *   meanwhile may still see its change applied, as with a real slow service.
 * - `hang`: the request is never answered (until the client gives up or the fake closes); with `applied: true` the
 *   provider applies the change first.
 * - `reset`: the connection is torn down without an answer (TCP reset where the platform allows it); with
 *   `applied: true` the provider applies the change first: the change happened, the client saw a reset. With
 *   `midBody: true` (implies applied) the status line, headers and half the body go out before the connection drops.
 */
export type ArmFault = { match?: FaultMatch; times?: number } & (
    | { status: ArmFaultStatus; code?: string; message?: string; retryAfterSeconds?: number }
    | { delayMs: number }
    | { hang: true; applied?: boolean }
    | { reset: true; applied?: boolean; midBody?: boolean }
);

export interface ArmKeyVaultFake {
    /** https://localhost:PORT */
    readonly url: string;
    /** The CA that signed the fake's certificate: pass it as `tlsOptions: { ca }`. */
    readonly caPem: string;
    /** Every request received, in order. */
    readonly requests: readonly RecordedRequest[];
    /** Requests whose content the real API would reject with 400 (also listed in `requests`). */
    readonly invalidRequests: readonly InvalidRequest[];
    /** The current state of a vault by resource id or (unique) name, deep-copied. Throws if there is none. */
    vault(resourceIdOrName: string): Vault;
    /** Creates or replaces a vault (keyed by its resource id, case-insensitively). */
    setVault(vault: Vault): void;
    /**
     * Deletes a vault, as if someone deleted it meanwhile: later requests for it answer 404 ResourceNotFound, as the
     * real API does. Returns whether there was such a vault.
     */
    deleteVault(resourceIdOrName: string): boolean;
    /** The api-versions the fake validates against (others are refused with 400 NoRegisteredProviderFound). */
    readonly apiVersions: readonly string[];
    inject(fault: ArmFault): void;
    // -- concurrent writer hook (h-reconcile) --
    /**
     * Calls `writer` once per write (PATCH or access-policy PUT) that follows a GET of the same vault, after the
     * GET and before the write takes effect: a test lands another writer's change in the read→write window (the
     * vault resource has no ETag, so the service cannot refuse the stale write). `undefined` removes the hook.
     */
    onReadWriteWindow(writer: ((vaultId: string) => void | Promise<void>) | undefined): void;
    // -- end concurrent writer hook --
    /** How many injected fault uses are still pending. */
    pendingFaults(): number;
    /** Drops every pending fault. */
    clearFaults(): void;
    /** Empties `requests` and `invalidRequests`. */
    clearLog(): void;
    close(): Promise<void>;
}

export interface ArmKeyVaultFakeOptions {
    vaults?: Vault[];
    /** More ARM routes, asked in order after authentication, before the Key Vault routes (see armMonitorRoutes.ts). */
    extraRoutes?: readonly ArmExtraRoute[];
    /**
     * Resource provider routes beyond Key Vault (see armAccessRoutes.ts), asked after `extraRoutes`: injected faults
     * act on their requests exactly as on the Key Vault routes (status, delay, hang, reset before or after apply).
     */
    providerRoutes?: readonly ArmProviderRoute[];
}

/** One request as a provider route sees it. */
export interface ArmProviderRequest {
    readonly method: string;
    /** The decoded URL path. */
    readonly path: string;
    readonly apiVersion: string | undefined;
    readonly query: URLSearchParams;
    readonly body: unknown;
    /** The body was present and not JSON. */
    readonly bodyIsJson: boolean;
    readonly contentType: string;
}

/** A resource provider served by the fake, with fault injection. */
export interface ArmProviderRoute {
    /** The operation this route serves the request with (e.g. `RoleAssignments_GetById`), or undefined. No effects. */
    operationOf(request: ArmProviderRequest): string | undefined;
    /** The RBAC action of an operation (named by 403 faults). */
    actionOf(operationId: string): string;
    /** Serves the request (validation included; answers 4xx for what the real API refuses). */
    handle(
        request: ArmProviderRequest,
        operationId: string,
    ): {
        status: number;
        body?: unknown;
        /** What the real API refuses in the request (listed in invalidRequests). */ invalid?: string[];
    };
}

/** An extra ARM route: the answer to a request it serves, or undefined to let the next route have it. */
export type ArmExtraRoute = (request: {
    method: string;
    /** The decoded URL path. */
    path: string;
    apiVersion: string | undefined;
    body: unknown;
}) => { status: number; body: unknown } | undefined;

// ---------------------------------------------------------------------------------------------------------------
// The OpenAPI definitions and a small validator that walks them

/**
 * The api-versions the fake knows, each with its OpenAPI document (a path below ./spec, laid out as upstream so that
 * relative $refs resolve). A request naming any other version is refused as ARM refuses it (see `unknownApiVersion`).
 * To model another version, vendor its definitions next to these and add a line here.
 */
export const ARM_KEYVAULT_SPECS: Readonly<Record<string, string>> = {
    '2026-02-01': 'specification/keyvault/resource-manager/Microsoft.KeyVault/KeyVault/stable/2026-02-01/openapi.json',
};
/** What @azure/arm-keyvault 5.x sends by default (`context.apiVersion ?? "2026-02-01"` in its vaults operations). */
export const SDK_DEFAULT_API_VERSION = '2026-02-01';

/** The OpenAPI definitions ship with the package (shared/simulation/spec); found from source and from dist/. */
export function specDir(): string {
    const probe = ARM_KEYVAULT_SPECS[SDK_DEFAULT_API_VERSION] ?? '';
    let dir = __dirname;
    for (let i = 0; i < 6; i++) {
        const candidate = join(dir, 'shared', 'simulation', 'spec');
        if (existsSync(join(candidate, probe))) return candidate;
        if (existsSync(join(dir, 'spec', probe))) return join(dir, 'spec');
        dir = dirname(dir);
    }
    throw new Error(`cannot find the Key Vault OpenAPI definitions (shared/simulation/spec/${probe})`);
}

export interface Schema {
    $ref?: string;
    type?: string;
    format?: string;
    pattern?: string;
    enum?: unknown[];
    required?: string[];
    properties?: Record<string, Schema>;
    additionalProperties?: boolean | Schema;
    items?: Schema;
    allOf?: Schema[];
    readOnly?: boolean;
    default?: unknown;
}

interface Parameter extends Omit<Schema, 'required'> {
    name?: string;
    in?: string;
    required?: boolean;
    schema?: Schema;
}

interface Operation {
    operationId: string;
    parameters?: Parameter[];
    responses?: Record<string, { schema?: Schema }>;
}

interface SpecDocument {
    info?: { version?: string };
    paths?: Record<string, Record<string, Operation>>;
    definitions?: Record<string, Schema>;
    parameters?: Record<string, Parameter>;
}

export type Mode = 'request' | 'response';

export interface ValidationError {
    code: 'InvalidRequestContent' | 'BadRequest';
    message: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeValue(v: unknown): string {
    if (Array.isArray(v)) return 'an array';
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string '${v}'`;
    if (typeof v === 'object') return 'an object';
    return `the ${typeof v} ${JSON.stringify(v)}`;
}

export class OpenApiSpec {
    private readonly docs = new Map<string, SpecDocument>();

    constructor(private readonly dir: string) {}

    doc(file: string): SpecDocument {
        let d = this.docs.get(file);
        if (d === undefined) {
            const path = join(this.dir, file);
            try {
                d = JSON.parse(readFileSync(path, 'utf8')) as SpecDocument;
            } catch (e) {
                throw new Error(`armKeyVaultFake: cannot read the OpenAPI definitions at ${path}: ${String(e)}`);
            }
            this.docs.set(file, d);
        }
        return d;
    }

    /** Resolves `[file]#/definitions/X` or `[file]#/parameters/X` relative to the document that holds the ref. */
    resolve<T>(ref: string, file: string): { value: T; file: string } {
        const hash = ref.indexOf('#');
        const filePart = hash < 0 ? ref : ref.slice(0, hash);
        const target = filePart === '' ? file : posix.normalize(posix.join(posix.dirname(file), filePart));
        const pointer = (hash < 0 ? '' : ref.slice(hash + 1)).split('/').filter(Boolean);
        let node: unknown = this.doc(target);
        for (const part of pointer) {
            node = isObject(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
        }
        if (node === undefined) throw new Error(`armKeyVaultFake: unresolved $ref ${ref} in ${file}`);
        return { value: node as T, file: target };
    }

    /** The schema behind a (possibly $ref'd) schema, following chains of refs. */
    deref(schema: Schema, file: string): { schema: Schema; file: string; readOnly: boolean } {
        let readOnly = schema.readOnly === true;
        let s = schema;
        let f = file;
        for (let hops = 0; s.$ref !== undefined; hops++) {
            if (hops > 32) throw new Error(`armKeyVaultFake: $ref cycle at ${s.$ref}`);
            const r = this.resolve<Schema>(s.$ref, f);
            s = r.value;
            f = r.file;
            readOnly ||= s.readOnly === true;
        }
        return { schema: s, file: f, readOnly };
    }

    /**
     * Validates a JSON value against a schema: type, format (uuid, int32, int64, date-time), pattern, enum, required,
     * properties, additionalProperties, items, allOf and $ref. In a request, readOnly properties are ignored, as ARM
     * ignores them; unknown properties are rejected where the schema has no additionalProperties. JSON null counts
     * as an omitted value. Enum values compare case-insensitively, as ARM resource providers do (the portal stores
     * access-policy permissions as 'Get', 'List', ...).
     */
    validate(value: unknown, schema: Schema, file: string, path: string, mode: Mode, errors: ValidationError[]): void {
        if (value === null || value === undefined) return;
        const { schema: s, file: f } = this.deref(schema, file);
        const type = s.type ?? (s.properties !== undefined || s.additionalProperties !== undefined ? 'object' : '');
        // An object's allOf parts (e.g. 2026-02-01's Vault: allOf ProxyResource → Resource) are merged into its own
        // properties and required list below; other schemas check each part on its own.
        if (type !== 'object') for (const part of s.allOf ?? []) this.validate(value, part, f, path, mode, errors);
        const at = path === '' ? 'the body' : path;
        const bad = (code: ValidationError['code'], message: string) =>
            errors.push({ code, message: `Invalid value found at ${at}: ${message}` });
        switch (type) {
            case 'object': {
                if (!isObject(value))
                    return void bad('InvalidRequestContent', `expected an object, got ${describeValue(value)}`);
                const known = this.objectProperties(s, f);
                for (const [key, child] of Object.entries(value)) {
                    const childPath = path === '' ? key : `${path}.${key}`;
                    const prop = known.get(key);
                    if (prop !== undefined) {
                        if (mode === 'request' && this.deref(prop.schema, prop.file).readOnly) continue;
                        this.validate(child, prop.schema, prop.file, childPath, mode, errors);
                    } else if (isObject(s.additionalProperties)) {
                        this.validate(child, s.additionalProperties, f, childPath, mode, errors);
                    } else if (s.additionalProperties !== true) {
                        errors.push({
                            code: 'BadRequest',
                            message: `Invalid property found at ${at}: '${key}' is not a property of this object`,
                        });
                    }
                }
                for (const name of this.requiredProperties(s, f)) {
                    const prop = known.get(name);
                    if (mode === 'request' && prop !== undefined && this.deref(prop.schema, prop.file).readOnly) {
                        continue;
                    }
                    if (value[name] === undefined || value[name] === null) {
                        errors.push({
                            code: 'BadRequest',
                            message: `Required property '${name}' is missing at ${at}`,
                        });
                    }
                }
                return;
            }
            case 'array':
                if (!Array.isArray(value))
                    return void bad('InvalidRequestContent', `expected an array, got ${describeValue(value)}`);
                if (s.items !== undefined) {
                    const items = s.items;
                    value.forEach((item, i) => this.validate(item, items, f, `${path}[${i}]`, mode, errors));
                }
                return;
            case 'string':
                if (typeof value !== 'string') {
                    return void bad('InvalidRequestContent', `expected a string, got ${describeValue(value)}`);
                }
                if (s.format === 'uuid' && !UUID.test(value)) return void bad('BadRequest', `'${value}' is not a GUID`);
                if (s.format === 'date-time' && !DATE_TIME.test(value)) {
                    return void bad('BadRequest', `'${value}' is not a date-time`);
                }
                if (s.pattern !== undefined && !new RegExp(s.pattern).test(value)) {
                    return void bad('BadRequest', `'${value}' does not match ${s.pattern}`);
                }
                break;
            case 'boolean':
                if (typeof value !== 'boolean') {
                    return void bad('InvalidRequestContent', `expected a boolean, got ${describeValue(value)}`);
                }
                break;
            case 'integer': {
                if (typeof value !== 'number' || !Number.isInteger(value)) {
                    return void bad('InvalidRequestContent', `expected an integer, got ${describeValue(value)}`);
                }
                const limit = s.format === 'int32' ? 2 ** 31 : Number.MAX_SAFE_INTEGER;
                if (value >= limit || value < -limit)
                    return void bad('InvalidRequestContent', `${value} is out of range`);
                break;
            }
            case 'number':
                if (typeof value !== 'number') {
                    return void bad('InvalidRequestContent', `expected a number, got ${describeValue(value)}`);
                }
                break;
            default:
                break;
        }
        if (s.enum !== undefined && !enumIncludes(s.enum, value)) {
            bad('BadRequest', `${describeValue(value)} is not one of ${s.enum.map(String).join(', ')}`);
        }
    }

    private objectProperties(s: Schema, file: string): Map<string, { schema: Schema; file: string }> {
        const out = new Map<string, { schema: Schema; file: string }>();
        for (const part of s.allOf ?? []) {
            const d = this.deref(part, file);
            for (const [k, v] of this.objectProperties(d.schema, d.file)) out.set(k, v);
        }
        for (const [k, v] of Object.entries(s.properties ?? {})) out.set(k, { schema: v, file });
        return out;
    }

    private requiredProperties(s: Schema, file: string): string[] {
        const out = [...(s.required ?? [])];
        for (const part of s.allOf ?? []) {
            const d = this.deref(part, file);
            out.push(...this.requiredProperties(d.schema, d.file));
        }
        return out;
    }
}

function enumIncludes(values: unknown[], v: unknown): boolean {
    return values.some((e) =>
        typeof e === 'string' && typeof v === 'string' ? e.toLowerCase() === v.toLowerCase() : e === v,
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Routes, taken from the spec's paths

type OperationId =
    'Vaults_Get' | 'Vaults_CreateOrUpdate' | 'Vaults_Update' | 'Vaults_Delete' | 'Vaults_UpdateAccessPolicy';
const MODELLED: readonly OperationId[] = [
    'Vaults_Get',
    'Vaults_CreateOrUpdate',
    'Vaults_Update',
    'Vaults_Delete',
    'Vaults_UpdateAccessPolicy',
];

interface Route {
    operationId: string;
    method: string;
    segments: string[];
    /** Each path parameter's schema, with the document it came from (for its $refs). */
    pathParameters: Map<string, { schema: Schema; file: string }>;
    body: { schema: Schema; required: boolean } | undefined;
    /** The schema of each documented success status ("200", "201"), to check the fake's own answers. */
    responses: Map<string, Schema>;
}

function loadRoutes(spec: OpenApiSpec, file: string): Route[] {
    const routes: Route[] = [];
    for (const [template, ops] of Object.entries(spec.doc(file).paths ?? {})) {
        if (!/\/providers\/Microsoft\.KeyVault\/vaults\/\{vaultName\}(\/|$)/.test(template)) continue;
        for (const [method, op] of Object.entries(ops)) {
            if (method === 'parameters') continue;
            const pathParameters = new Map<string, { schema: Schema; file: string }>();
            let body: Route['body'];
            for (const raw of op.parameters ?? []) {
                const r = raw.$ref !== undefined ? spec.resolve<Parameter>(raw.$ref, file) : { value: raw, file };
                const p = r.value;
                // A path parameter is its own schema (type, pattern, enum), less the parameter-only keys.
                const { name, in: location, required: _required, schema: _schema, ...schema } = p;
                if (location === 'path' && name !== undefined) pathParameters.set(name, { schema, file: r.file });
                if (p.in === 'body' && p.schema !== undefined)
                    body = { schema: p.schema, required: p.required === true };
            }
            const responses = new Map<string, Schema>();
            for (const [status, r] of Object.entries(op.responses ?? {})) {
                if (r.schema !== undefined && /^2\d\d$/.test(status)) responses.set(status, r.schema);
            }
            routes.push({
                operationId: op.operationId,
                method: method.toUpperCase(),
                segments: template.split('/').filter(Boolean),
                pathParameters,
                body,
                responses,
            });
        }
    }
    return routes;
}

/** Literal segments compare case-insensitively, as ARM matches them. */
function matchRoute(route: Route, segments: string[]): Map<string, string> | undefined {
    if (route.segments.length !== segments.length) return undefined;
    const params = new Map<string, string>();
    for (let i = 0; i < segments.length; i++) {
        const t = route.segments[i] ?? '';
        const s = segments[i] ?? '';
        const name = /^\{(.+)\}$/.exec(t)?.[1];
        if (name !== undefined) params.set(name, s);
        else if (t.toLowerCase() !== s.toLowerCase()) return undefined;
    }
    return params;
}

// ---------------------------------------------------------------------------------------------------------------
// Service rules that the schema does not express (each with its source)

/**
 * Service-side checks on a request body beyond the schema:
 * - IPRule.value: "An IPv4 address range in CIDR notation, such as '124.56.78.91' (simple IP address) or
 *   '124.56.78.0/24'" (spec description). The service also refuses private ranges: "Invalid value found at
 *   properties.networkAcls.ipRules[0].value: 10.0.0.0/8 belongs to forbidden range 10.0.0.0–10.255.255.255 (private IP
 *   addresses)" (Azure/azure-powershell#11471).
 * - enablePurgeProtection: "the property does not accept false as its value"; enableSoftDelete: "Once set to true,
 *   it cannot be reverted to false"; softDeleteRetentionInDays: "It accepts >=7 and <=90" (spec descriptions).
 * - AccessPolicyEntry: "All identities in the array must use the same tenant ID as the key vault's tenant ID"
 *   (spec description).
 */
function serviceRuleErrors(body: Record<string, unknown>, vault: Vault | undefined): ValidationError[] {
    const errors: ValidationError[] = [];
    const props = isObject(body.properties) ? body.properties : {};
    const acls = isObject(props.networkAcls) ? props.networkAcls : {};
    if (Array.isArray(acls.ipRules)) {
        acls.ipRules.forEach((rule, i) => {
            const value = isObject(rule) ? rule.value : undefined;
            if (typeof value !== 'string') return;
            const problem = ipRuleProblem(value);
            if (problem !== undefined) {
                errors.push({
                    code: 'BadRequest',
                    message: `Invalid value found at properties.networkAcls.ipRules[${i}].value: ${problem}`,
                });
            }
        });
    }
    if (props.enablePurgeProtection === false) {
        errors.push({
            code: 'BadRequest',
            message:
                'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.',
        });
    }
    if (props.enableSoftDelete === false && vault?.properties.enableSoftDelete !== false) {
        errors.push({
            code: 'BadRequest',
            message:
                'The property "enableSoftDelete" cannot be set to false. Enabling the soft delete for a vault is an irreversible action.',
        });
    }
    const days = props.softDeleteRetentionInDays;
    if (typeof days === 'number' && (days < 7 || days > 90)) {
        errors.push({ code: 'BadRequest', message: `softDeleteRetentionInDays must be between 7 and 90, got ${days}` });
    }
    if (vault !== undefined && Array.isArray(props.accessPolicies)) {
        props.accessPolicies.forEach((entry, i) => {
            const tenantId = isObject(entry) ? entry.tenantId : undefined;
            if (typeof tenantId === 'string' && tenantId.toLowerCase() !== vault.properties.tenantId.toLowerCase()) {
                errors.push({
                    code: 'BadRequest',
                    message: `Invalid value found at properties.accessPolicies[${i}].tenantId: all access policies must use the vault's tenant ID`,
                });
            }
        });
    }
    return errors;
}

function ipv4(text: string): number[] | undefined {
    const parts = text.split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
    return parts.map(Number);
}

function ipRuleProblem(value: string): string | undefined {
    const [address = '', prefix, ...rest] = value.split('/');
    const octets = ipv4(address);
    if (octets === undefined || rest.length > 0 || (prefix !== undefined && !/^\d{1,2}$/.test(prefix))) {
        return `'${value}' is not an IPv4 address or an IPv4 range in CIDR notation`;
    }
    if (prefix !== undefined && Number(prefix) > 32) return `'${value}' has a prefix length over 32`;
    const [a = 0, b = 0] = octets;
    if (a === 10) return `${value} belongs to forbidden range 10.0.0.0–10.255.255.255 (private IP addresses)`;
    if (a === 172 && b >= 16 && b <= 31) {
        return `${value} belongs to forbidden range 172.16.0.0–172.31.255.255 (private IP addresses)`;
    }
    if (a === 192 && b === 168) {
        return `${value} belongs to forbidden range 192.168.0.0–192.168.255.255 (private IP addresses)`;
    }
    return undefined;
}

/**
 * The service stores a single address as a /32 range: a rule sent as '1.2.3.4' reads back as '1.2.3.4/32'
 * (hashicorp/terraform-provider-azurerm#2164, Azure/azure-cli#18479). Code that compares rules must normalise.
 */
function normaliseIpRules(acls: NetworkRuleSet): NetworkRuleSet {
    if (acls.ipRules === undefined) return acls;
    return {
        ...acls,
        ipRules: acls.ipRules.map((r) => (r.value.includes('/') ? r : { ...r, value: `${r.value}/32` })),
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Access policies

const PERMISSION_KINDS = ['keys', 'secrets', 'certificates', 'storage'] as const;

function sameHolder(a: AccessPolicyEntry, b: AccessPolicyEntry): boolean {
    const eq = (x: string | undefined, y: string | undefined) => (x ?? '').toLowerCase() === (y ?? '').toLowerCase();
    return eq(a.tenantId, b.tenantId) && eq(a.objectId, b.objectId) && eq(a.applicationId, b.applicationId);
}

function hasPermissions(p: Permissions): boolean {
    return PERMISSION_KINDS.some((k) => (p[k]?.length ?? 0) > 0);
}

/**
 * Vaults_UpdateAccessPolicy ("Access policy to merge into the vault", spec). What each kind does is service
 * behaviour the spec does not spell out; modelled as follows:
 * - add: the listed permissions are merged into the entry of the same tenantId + objectId (+ applicationId), or a new
 *   entry is appended. Merging ignores case ("The accessPolicies/add endpoint already handles this correctly and
 *   accepts permissions regardless of casing", Azure/azure-rest-api-specs#42963).
 * - replace: the entry's permissions become the listed ones (an entry that does not exist yet is appended).
 * - remove: the listed permissions are taken out of the matching entry, and an entry left with no permission at all
 *   is dropped; so sending an entry with all of its permissions removes it. That is what Terraform relies on: its
 *   azurerm_key_vault_access_policy delete sends the entry as found, with all its permissions, to
 *   accessPolicies/remove and then waits until the entry is gone. Permission values match case-SENSITIVELY: "The
 *   accessPolicies/remove endpoint performs case-sensitive matching on permission values, so sending lowercase values
 *   ... results in a silent no-op" with HTTP 200 (Azure/azure-rest-api-specs#42963, api-version 2026-02-01; also
 *   hashicorp/terraform-provider-azurerm#10707). Send back the values exactly as read. Removing from a holder with no
 *   entry is a no-op.
 */
function applyAccessPolicyUpdate(
    current: AccessPolicyEntry[],
    kind: string,
    entries: AccessPolicyEntry[],
): AccessPolicyEntry[] {
    const result = structuredClone(current);
    for (const entry of entries) {
        const index = result.findIndex((e) => sameHolder(e, entry));
        const existing = index >= 0 ? result[index] : undefined;
        switch (kind.toLowerCase()) {
            case 'add': {
                if (existing === undefined) {
                    result.push(structuredClone(entry));
                    break;
                }
                for (const k of PERMISSION_KINDS) {
                    const add = entry.permissions[k];
                    if (add === undefined) continue;
                    const merged = [...(existing.permissions[k] ?? [])];
                    for (const p of add) {
                        if (!merged.some((m) => m.toLowerCase() === p.toLowerCase())) merged.push(p);
                    }
                    existing.permissions[k] = merged;
                }
                break;
            }
            case 'replace':
                if (existing === undefined) result.push(structuredClone(entry));
                else existing.permissions = structuredClone(entry.permissions);
                break;
            case 'remove': {
                if (existing === undefined) break;
                for (const k of PERMISSION_KINDS) {
                    const remove = entry.permissions[k];
                    const have = existing.permissions[k];
                    if (remove === undefined || have === undefined) continue;
                    existing.permissions[k] = have.filter((p) => !remove.includes(p));
                }
                if (!hasPermissions(existing.permissions)) result.splice(index, 1);
                break;
            }
            default:
                throw new Error(`unknown access policy operation kind ${kind}`);
        }
    }
    return result;
}

// ---------------------------------------------------------------------------------------------------------------
// The server

interface PendingFault {
    fault: ArmFault;
    remaining: number;
}

interface ArmError {
    status: number;
    code: string;
    message: string;
    headers?: Record<string, string>;
}

/** What the provider answered, before any fault decides whether the client gets to see it. */
interface ArmAnswer {
    status: number;
    body?: unknown;
    headers?: Record<string, string>;
}

/** One api-version the fake serves: its OpenAPI document and the routes in it. */
interface ApiVersionModel {
    version: string;
    file: string;
    routes: Route[];
}

function vaultKey(id: string): string {
    return id.toLowerCase().replace(/\/+$/, '');
}

function vaultIdFor(subscriptionId: string, resourceGroup: string, name: string): string {
    return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}`;
}

function safeDecode(segment: string): string {
    try {
        return decodeURIComponent(segment);
    } catch {
        return segment;
    }
}

function faultMatches(fault: ArmFault, method: string, decodedPath: string): boolean {
    const m = fault.match;
    if (m?.method !== undefined && m.method.toUpperCase() !== method.toUpperCase()) return false;
    if (m?.pathIncludes !== undefined && !decodedPath.toLowerCase().includes(m.pathIncludes.toLowerCase())) {
        return false;
    }
    return true;
}

function actionFor(operationId: string): string {
    if (operationId === 'Vaults_Get') return 'Microsoft.KeyVault/vaults/read';
    if (operationId === 'Vaults_Delete') return 'Microsoft.KeyVault/vaults/delete';
    if (operationId === 'Vaults_UpdateAccessPolicy') return 'Microsoft.KeyVault/vaults/accessPolicies/write';
    return 'Microsoft.KeyVault/vaults/write';
}

const REASON: Record<ArmFaultStatus, string> = {
    400: 'BadRequest',
    401: 'InvalidAuthenticationToken',
    403: 'AuthorizationFailed',
    404: 'ResourceNotFound',
    408: 'RequestTimeout',
    409: 'Conflict',
    412: 'PreconditionFailed',
    429: 'TooManyRequests',
    500: 'InternalServerError',
    502: 'BadGateway',
    503: 'ServiceUnavailable',
    504: 'GatewayTimeout',
};

/**
 * The answer of a status fault, shaped as ARM answers: the status, a CloudError body `{ error: { code, message } }`
 * (common-types ErrorResponse; Key Vault's CloudError in the spec) and the headers that go with it. Sources:
 * - 401 InvalidAuthenticationToken with a `WWW-Authenticate: Bearer ... error="invalid_token"` challenge: what ARM
 *   answers for an expired or wrong-audience token (learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
 *   common-deployment-errors lists InvalidAuthenticationToken).
 * - 403 AuthorizationFailed, message "The client '...' with object id '...' does not have authorization to perform
 *   action '...' over scope '...'" (same page; the action names are the Key Vault RBAC operations).
 * - 404 ResourceNotFound "The Resource 'Microsoft.KeyVault/vaults/x' under resource group 'y' was not found"
 *   (same page, with the aka.ms/ARMResourceNotFoundFix link ARM appends).
 * - 409: 'Conflict' by default; ARM's resource lock answer is code 'ScopeLocked' ("The scope '...' cannot perform
 *   write operation because following scope(s) are locked", learn.microsoft.com/azure/azure-resource-manager/
 *   management/lock-resources), pass `code: 'ScopeLocked'` for it.
 * - 429: ARM's own subscription throttling answers 'SubscriptionRequestsThrottled' with a Retry-After header
 *   (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling); a resource provider
 *   may answer 429 with its own code and no Retry-After: the default code is 'TooManyRequests' then.
 * - 504 GatewayTimeout "The gateway did not receive a response from 'Microsoft.KeyVault' within the specified time
 *   period": ARM's gateway answer when the provider does not answer in time (request-limits page, "Error code").
 * - 408, 412, 500, 502, 503: the HTTP reason as the code (modelled: the spec documents no codes for these).
 */
function faultError(
    fault: Extract<ArmFault, { status: number }>,
    operationId: string,
    resource: string,
    name: string,
    resourceGroup: string,
): ArmError {
    const headers: Record<string, string> = {};
    if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
    let code = fault.code ?? REASON[fault.status];
    if (fault.code === undefined && fault.status === 429 && fault.retryAfterSeconds !== undefined) {
        code = 'SubscriptionRequestsThrottled';
    }
    let message: string;
    switch (fault.status) {
        case 401:
            message = 'The access token is invalid.';
            headers['www-authenticate'] =
                'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The access token is invalid."';
            break;
        case 403:
            message = `The client 'kv-responder' with object id '00000000-0000-0000-0000-000000000000' does not have authorization to perform action '${actionFor(operationId)}' over scope '${resource}' or the scope is invalid. If access was recently granted, please refresh your credentials.`;
            break;
        case 404:
            message = `The Resource 'Microsoft.KeyVault/vaults/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`;
            break;
        case 409:
            message =
                code === 'ScopeLocked'
                    ? `The scope '${resource}' cannot perform write operation because following scope(s) are locked: '${resource}'. Please remove the lock and try again.`
                    : 'The request conflicts with another operation in progress on this vault. Please retry.';
            break;
        case 429:
            message =
                code === 'SubscriptionRequestsThrottled'
                    ? `Number of 'write' requests for subscription exceeded the limit. Please try again after '${fault.retryAfterSeconds}' seconds.`
                    : 'The request is being throttled as the limit has been reached for this operation type.';
            break;
        case 504:
            message =
                "The gateway did not receive a response from 'Microsoft.KeyVault' within the specified time period.";
            break;
        case 400:
        case 408:
        case 412:
        case 500:
        case 502:
        case 503:
            message = `${REASON[fault.status]}: fault injected by the test.`;
    }
    return { status: fault.status, code, message: fault.message ?? message, headers };
}

export async function startArmKeyVaultFake(options: ArmKeyVaultFakeOptions = {}): Promise<ArmKeyVaultFake> {
    const spec = new OpenApiSpec(specDir());
    const models = new Map<string, ApiVersionModel>();
    for (const [version, file] of Object.entries(ARM_KEYVAULT_SPECS)) {
        const declared = spec.doc(file).info?.version;
        if (declared !== version) {
            throw new Error(`armKeyVaultFake: ${file} declares api-version ${String(declared)}, expected ${version}`);
        }
        models.set(version, { version, file, routes: loadRoutes(spec, file) });
    }
    const defaultModel = models.get(SDK_DEFAULT_API_VERSION);
    if (defaultModel === undefined) throw new Error(`armKeyVaultFake: no definitions for ${SDK_DEFAULT_API_VERSION}`);
    const supportedApiVersions = [...models.keys()];
    const { caPem } = await getTestCa();

    const vaults = new Map<string, Vault>();
    const requests: RecordedRequest[] = [];
    const invalidRequests: InvalidRequest[] = [];
    const faults: PendingFault[] = [];
    const timers = new Set<NodeJS.Timeout>();
    /** Waits `ms` on a timer that `close()` clears (an injected delay; check `closed` after it). */
    const delay = (ms: number): Promise<void> =>
        new Promise<void>((resolve) => {
            const t = setTimeout(() => {
                timers.delete(t);
                resolve();
            }, ms);
            timers.add(t);
        });
    /** Requests held by a hang fault: resolving one lets its handler return (the fake is closing). */
    const held = new Set<() => void>();
    let closed = false;
    // -- concurrent writer hook (h-reconcile) --
    let windowWriter: ((vaultId: string) => void | Promise<void>) | undefined;
    const readSinceWrite = new Set<string>();
    // -- end concurrent writer hook --

    function validateVault(v: Vault, model: ApiVersionModel): ValidationError[] {
        const errors: ValidationError[] = [];
        spec.validate(v, { $ref: '#/definitions/Vault' }, model.file, '', 'response', errors);
        if (typeof v.id !== 'string' || !/\/providers\/Microsoft\.KeyVault\/vaults\/[^/]+$/i.test(v.id)) {
            errors.push({ code: 'BadRequest', message: `id '${String(v.id)}' is not a Key Vault resource id` });
        }
        return errors;
    }

    function storeVault(v: Vault): void {
        const errors = validateVault(v, defaultModel as ApiVersionModel);
        if (errors.length > 0) {
            throw new Error(`armKeyVaultFake: not a valid Vault: ${errors.map((e) => e.message).join('; ')}`);
        }
        vaults.set(vaultKey(v.id), structuredClone(v));
    }

    for (const v of options.vaults ?? []) storeVault(v);

    function findVault(resourceIdOrName: string): Vault | undefined {
        if (resourceIdOrName.startsWith('/')) return vaults.get(vaultKey(resourceIdOrName));
        const byName = [...vaults.values()].filter((v) => v.name.toLowerCase() === resourceIdOrName.toLowerCase());
        if (byName.length > 1) {
            throw new Error(
                `armKeyVaultFake: ${byName.length} vaults are named ${resourceIdOrName}: use the resource id`,
            );
        }
        return byName[0];
    }

    function touch(v: Vault): void {
        v.systemData = {
            ...v.systemData,
            lastModifiedBy: 'kv-responder-fake',
            lastModifiedByType: 'Application',
            lastModifiedAt: new Date().toISOString(),
        };
    }

    /**
     * The `default` of every VaultProperties property in the api-version's definitions, for a vault created without
     * it. In 2026-02-01 that makes `enableRbacAuthorization` true ("From 2026-02-01 new vaults default to Azure RBAC",
     * learn.microsoft.com/azure/key-vault/general/migrate-api-version, and `"default": true` in openapi.json), plus
     * enableSoftDelete true, softDeleteRetentionInDays 90, the three enabledFor* false and publicNetworkAccess
     * 'enabled' (the spec's casing).
     */
    function propertyDefaults(model: ApiVersionModel): Record<string, unknown> {
        const { schema, file } = spec.deref({ $ref: '#/definitions/VaultProperties' }, model.file);
        const out: Record<string, unknown> = {};
        for (const [key, prop] of Object.entries(schema.properties ?? {})) {
            const d = prop.default ?? spec.deref(prop, file).schema.default;
            if (d !== undefined) out[key] = d;
        }
        return out;
    }

    function send(res: ServerResponse, record: RecordedRequest, status: number, body: unknown, headers = {}): void {
        record.status = status;
        const text = body === undefined ? '' : JSON.stringify(body);
        res.writeHead(status, {
            'content-type': 'application/json; charset=utf-8',
            'x-ms-request-id': randomUUID(),
            'x-ms-correlation-request-id': randomUUID(),
            ...headers,
        });
        res.end(text);
    }

    function sendError(res: ServerResponse, record: RecordedRequest, e: ArmError): void {
        // common-types ErrorResponse / the spec's CloudError: { error: { code, message } }
        send(res, record, e.status, { error: { code: e.code, message: e.message } }, e.headers);
    }

    /** Tears the connection down without an answer: a TCP reset where Node can send one, else a plain close. */
    function resetConnection(req: IncomingMessage): void {
        const socket = req.socket as IncomingMessage['socket'] & { resetAndDestroy?: () => void };
        try {
            if (typeof socket.resetAndDestroy === 'function') return void socket.resetAndDestroy();
        } catch {
            // A TLS socket may refuse a reset: close it instead.
        }
        socket.destroy();
    }

    /** Never answers: returns when the client goes away or the fake closes. */
    function holdForever(res: ServerResponse): Promise<void> {
        return new Promise<void>((resolve) => {
            const done = (): void => {
                held.delete(done);
                resolve();
            };
            held.add(done);
            res.once('close', done);
        });
    }

    /**
     * What an injected fault does before the provider handles the request: a delay waits; a status is answered with
     * the error `errorOf` gives for it; a reset or a hang that strikes before the change cuts or holds the request.
     * Resolves true when the request is done with (answered, cut, held until it ended, or the fake closed during a
     * delay), false when the provider handles it next (no fault, after a delay, or a fault that strikes after it).
     */
    async function faultBeforeHandler(
        req: IncomingMessage,
        res: ServerResponse,
        record: RecordedRequest,
        fault: ArmFault | undefined,
        errorOf: (fault: Extract<ArmFault, { status: number }>) => ArmError,
    ): Promise<boolean> {
        if (fault === undefined) return false;
        record.fault = fault;
        if ('delayMs' in fault) {
            await delay(fault.delayMs);
            return closed;
        }
        if ('status' in fault) {
            sendError(res, record, errorOf(fault));
            return true;
        }
        if (fault.applied === true || ('midBody' in fault && fault.midBody === true)) return false;
        if ('reset' in fault) resetConnection(req);
        else await holdForever(res);
        return true;
    }

    function takeFault(method: string, decodedPath: string): ArmFault | undefined {
        const pending = faults.find((f) => f.remaining > 0 && faultMatches(f.fault, method, decodedPath));
        if (pending === undefined) return undefined;
        pending.remaining -= 1;
        if (pending.remaining === 0) faults.splice(faults.indexOf(pending), 1);
        return pending.fault;
    }

    /**
     * A request for an api-version the fake has no definitions for. ARM answers a resource-type request with an
     * unregistered api-version with 400 NoRegisteredProviderFound: "No registered resource provider found for location
     * 'x' and API version 'y' for type 'vaults'. The supported api-versions are '...'. The supported locations are
     * '...'." (Azure/azure-cli#19389, #18483, #20226). InvalidApiVersionParameter ("The api-version 'x' is invalid")
     * is what ARM's own (Microsoft.Resources) endpoints answer, not a resource provider's type.
     */
    function unknownApiVersion(apiVersion: string, location: string): ArmError & { status: 400 } {
        return {
            status: 400,
            code: 'NoRegisteredProviderFound',
            message: `No registered resource provider found for location '${location}' and API version '${apiVersion}' for type 'vaults'. The supported api-versions are '${supportedApiVersions.join(', ')}'. The supported locations are 'westeurope, northeurope, eastus, westus'.`,
        };
    }

    /** Runs a validated request against the vault store. */
    function apply(
        operationId: OperationId,
        model: ApiVersionModel,
        params: Map<string, string>,
        body: unknown,
        ids: { resourceId: string; sub: string; rg: string; name: string },
    ): ArmAnswer | ArmError {
        const vault = findVault(ids.resourceId);
        const notFound: ArmError = {
            status: 404,
            code: 'ResourceNotFound',
            message: `The Resource 'Microsoft.KeyVault/vaults/${ids.name}' under resource group '${ids.rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
        };
        switch (operationId) {
            case 'Vaults_Get':
                return vault === undefined ? notFound : { status: 200, body: vault };
            case 'Vaults_Delete':
                // 200 "Resource deleted successfully.", 204 "Resource does not exist." (openapi.json, Vaults_Delete).
                if (vault === undefined) return { status: 204 };
                vaults.delete(vaultKey(vault.id));
                return { status: 200 };
            case 'Vaults_CreateOrUpdate': {
                // VaultCreateOrUpdateParameters. A new vault gets the spec's defaults (`propertyDefaults`). For an
                // existing vault the spec says nothing about omitted properties; modelled: each property sent
                // replaces the stored one and the others stay, in particular the permission model: "existing vaults
                // keep their model" (learn.microsoft.com/azure/key-vault/general/migrate-api-version). Answered
                // synchronously (200 update, 201 create, provisioningState Succeeded): the SDK's poller then has
                // nothing to poll.
                const put = body as { location: string; tags?: Record<string, string>; properties: VaultProperties };
                const properties = structuredClone(put.properties);
                if (properties.networkAcls !== undefined) {
                    properties.networkAcls = normaliseIpRules(properties.networkAcls);
                }
                if (vault !== undefined) {
                    for (const [key, value] of Object.entries(properties)) {
                        if (value !== null && value !== undefined) vault.properties[key] = value;
                    }
                    if (put.tags !== undefined) vault.tags = structuredClone(put.tags);
                    touch(vault);
                    return { status: 200, body: vault };
                }
                const now = new Date().toISOString();
                const created: Vault = {
                    id: vaultIdFor(ids.sub, ids.rg, ids.name),
                    name: ids.name,
                    type: 'Microsoft.KeyVault/vaults',
                    location: put.location,
                    tags: structuredClone(put.tags ?? {}),
                    systemData: {
                        createdBy: 'kv-responder-fake',
                        createdByType: 'Application',
                        createdAt: now,
                        lastModifiedBy: 'kv-responder-fake',
                        lastModifiedByType: 'Application',
                        lastModifiedAt: now,
                    },
                    properties: {
                        ...propertyDefaults(model),
                        ...properties,
                        accessPolicies: properties.accessPolicies ?? [],
                        vaultUri: properties.vaultUri ?? `https://${ids.name}.vault.azure.net/`,
                        provisioningState: 'Succeeded',
                    },
                };
                // What the fake stores must itself be a valid Vault of this api-version.
                const invalid = validateVault(created, model);
                if (invalid.length > 0) {
                    return { status: 400, code: 'BadRequest', message: invalid.map((e) => e.message).join('; ') };
                }
                vaults.set(vaultKey(created.id), created);
                return { status: 201, body: created };
            }
            case 'Vaults_Update': {
                if (vault === undefined) return notFound;
                // PATCH (VaultPatchParameters). Each top-level property present in `properties` replaces the stored
                // value, and so does `tags`. `networkAcls` in particular is replaced AS A WHOLE: ipRules,
                // virtualNetworkRules or bypass left out of the PATCH are gone afterwards. The spec does not say
                // whether the service keeps existing ipRules when a PATCH carries a partial networkAcls ("whether the
                // service keeps existing ipRules is service behaviour", azure-contracts.md 1.6); the fake models the
                // risky reading on purpose, so that remediation code must GET, edit and PATCH the complete
                // networkAcls it read. `enableRbacAuthorization` left out keeps its value ("If null or not
                // specified, the value of this property will not change", VaultPatchProperties, 2026-02-01).
                const patch = body as { tags?: Record<string, string> | null; properties?: Record<string, unknown> };
                if (patch.tags !== undefined && patch.tags !== null) vault.tags = structuredClone(patch.tags);
                for (const [key, value] of Object.entries(patch.properties ?? {})) {
                    if (value === null || value === undefined) continue;
                    vault.properties[key] =
                        key === 'networkAcls'
                            ? normaliseIpRules(structuredClone(value as NetworkRuleSet))
                            : structuredClone(value);
                }
                touch(vault);
                return { status: 200, body: vault };
            }
            case 'Vaults_UpdateAccessPolicy': {
                if (vault === undefined) return notFound;
                const kind = params.get('operationKind') ?? '';
                const entries = (body as { properties: { accessPolicies: AccessPolicyEntry[] } }).properties
                    .accessPolicies;
                vault.properties.accessPolicies = applyAccessPolicyUpdate(
                    vault.properties.accessPolicies ?? [],
                    kind,
                    entries,
                );
                touch(vault);
                // The response is a VaultAccessPolicyParameters. The one published example
                // (updateAccessPoliciesAdd.json) answers with the access policies of the request, not the vault's whole
                // list: read the vault to see the result.
                return {
                    status: 200,
                    body: {
                        id: `${vault.id}/accessPolicies/${kind.toLowerCase()}`,
                        type: 'Microsoft.KeyVault/vaults/accessPolicies',
                        properties: { accessPolicies: structuredClone(entries) },
                    },
                };
            }
        }
    }

    async function handle(req: IncomingMessage, res: ServerResponse, rawBody: string): Promise<void> {
        // @azure/arm-authorization builds by-id URLs as `/{roleAssignmentId}` with an id that starts with a slash, so
        // the request line reads `//subscriptions/...`: a path, not a protocol-relative URL (ARM serves it).
        const url = new URL((req.url ?? '/').replace(/^\/{2,}/, '/'), 'https://localhost');
        const method = (req.method ?? 'GET').toUpperCase();
        const segments = url.pathname.split('/').filter(Boolean).map(safeDecode);
        const decodedPath = `/${segments.join('/')}`;
        const apiVersion = url.searchParams.get('api-version') ?? undefined;
        let body: unknown;
        let bodyIsJson = true;
        if (rawBody.length > 0) {
            try {
                body = JSON.parse(rawBody);
            } catch {
                body = rawBody;
                bodyIsJson = false;
            }
        }
        const record: RecordedRequest = {
            method,
            path: url.pathname,
            apiVersion,
            body,
            authorization: req.headers.authorization,
            status: 0,
        };
        requests.push(record);
        const reject = (e: ArmError & { status: 400 | 404 | 405 | 415 }, errors = [e.message]) => {
            invalidRequests.push(Object.assign(record, { errors }));
            sendError(res, record, e);
        };

        // ARM authenticates before anything else.
        if (!/^Bearer\s+\S+/i.test(req.headers.authorization ?? '')) {
            return sendError(res, record, {
                status: 401,
                code: 'AuthenticationFailed',
                message: "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
                headers: {
                    'www-authenticate':
                        'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The authentication failed because of missing \'Authorization\' header."',
                },
            });
        }
        for (const extra of options.extraRoutes ?? []) {
            const answer = extra({ method, path: decodedPath, apiVersion, body });
            if (answer !== undefined) return send(res, record, answer.status, answer.body);
        }
        const providerRequest: ArmProviderRequest = {
            method,
            path: decodedPath,
            apiVersion,
            query: url.searchParams,
            body,
            bodyIsJson,
            contentType: (req.headers['content-type'] ?? '').toLowerCase(),
        };
        for (const provider of options.providerRoutes ?? []) {
            const operationId = provider.operationOf(providerRequest);
            if (operationId === undefined) continue;
            const fault = takeFault(method, decodedPath);
            const done = await faultBeforeHandler(req, res, record, fault, (f) => {
                const e = faultError(f, operationId, decodedPath, decodedPath.split('/').pop() ?? '', '');
                const action = provider.actionOf(operationId);
                return {
                    ...e,
                    message:
                        f.message ??
                        (f.status === 403
                            ? `The client 'kv-responder' with object id '00000000-0000-0000-0000-000000000000' does not have authorization to perform action '${action}' over scope '${decodedPath}' or the scope is invalid. If access was recently granted, please refresh your credentials.`
                            : f.status === 404
                              ? `The resource '${decodedPath}' was not found.`
                              : e.message),
                };
            });
            if (done) return;
            const answer = provider.handle(providerRequest, operationId);
            if (answer.invalid !== undefined) invalidRequests.push(Object.assign(record, { errors: answer.invalid }));
            record.applied = method !== 'GET' && answer.status < 300;
            return finish(req, res, record, fault, { status: answer.status, body: answer.body });
        }
        if (apiVersion === undefined || apiVersion === '') {
            return reject({
                status: 400,
                code: 'MissingApiVersionParameter',
                message: 'The api-version query parameter (?api-version=) is required for all requests.',
            });
        }
        const model = models.get(apiVersion);
        if (model === undefined) {
            // The message names the resource's location when the vault exists.
            const vault = segments.length >= 8 ? findVaultQuietly(`/${segments.slice(0, 8).join('/')}`) : undefined;
            return reject(unknownApiVersion(apiVersion, vault?.location ?? 'westeurope'));
        }

        let matched: { route: Route; params: Map<string, string> } | undefined;
        let pathMatchedOtherMethod = false;
        for (const route of model.routes) {
            const params = matchRoute(route, segments);
            if (params === undefined) continue;
            if (route.method === method) {
                matched = { route, params };
                break;
            }
            pathMatchedOtherMethod = true;
        }
        if (matched === undefined) {
            return reject({
                status: pathMatchedOtherMethod ? 405 : 404,
                code: pathMatchedOtherMethod ? 'UnsupportedByFake' : 'NotFound',
                message: pathMatchedOtherMethod
                    ? `${method} ${decodedPath} is not modelled by the fake (it models ${MODELLED.join(', ')}).`
                    : `No route for ${method} ${decodedPath}.`,
            });
        }
        const { route, params } = matched;
        if (!MODELLED.includes(route.operationId as OperationId)) {
            return reject({
                status: 405,
                code: 'UnsupportedByFake',
                message: `${route.operationId} (${method} ${decodedPath}) is not modelled by the fake.`,
            });
        }

        // Validate path parameters and the body against the api-version's definitions.
        const errors: ValidationError[] = [];
        for (const [name, p] of route.pathParameters) {
            spec.validate(params.get(name), p.schema, p.file, `path parameter ${name}`, 'request', errors);
        }
        const sub = params.get('subscriptionId') ?? '';
        const rg = params.get('resourceGroupName') ?? '';
        const name = params.get('vaultName') ?? '';
        const resourceId = vaultIdFor(sub, rg, name);
        if (route.body !== undefined) {
            const contentType = (req.headers['content-type'] ?? '').toLowerCase();
            if (rawBody.length > 0 && !contentType.startsWith('application/json')) {
                return reject({
                    status: 415,
                    code: 'UnsupportedMediaType',
                    message: `The content media type '${contentType}' is not supported. Only 'application/json' is supported.`,
                });
            }
            if (!bodyIsJson) {
                errors.push({
                    code: 'InvalidRequestContent',
                    message: 'The request content was invalid and could not be deserialized: the body is not JSON.',
                });
            } else if (body === undefined || body === null) {
                if (route.body.required) {
                    errors.push({ code: 'InvalidRequestContent', message: 'The request content is required.' });
                }
            } else {
                spec.validate(body, route.body.schema, model.file, '', 'request', errors);
                if (errors.length === 0 && isObject(body))
                    errors.push(...serviceRuleErrors(body, findVault(resourceId)));
            }
        }
        if (errors.length > 0) {
            invalidRequests.push(Object.assign(record, { errors: errors.map((e) => e.message) }));
        }

        // Injected faults act after authentication, as ARM throttling and RBAC do, and before the provider.
        const fault = takeFault(method, decodedPath);
        if (
            await faultBeforeHandler(req, res, record, fault, (f) =>
                faultError(f, route.operationId, resourceId, name, rg),
            )
        )
            return;

        if (errors.length > 0) {
            const first = errors[0];
            return sendError(res, record, {
                status: 400,
                code: first?.code ?? 'BadRequest',
                message: errors.map((e) => e.message).join('; '),
            });
        }

        // -- concurrent writer hook (h-reconcile) --
        const isRead = route.operationId === 'Vaults_Get';
        if (isRead) readSinceWrite.add(resourceId.toLowerCase());
        else if (windowWriter !== undefined && readSinceWrite.delete(resourceId.toLowerCase()))
            await windowWriter(resourceId);
        // -- end concurrent writer hook --
        const answer = apply(route.operationId as OperationId, model, params, body, { resourceId, sub, rg, name });
        if ('code' in answer) return sendError(res, record, answer);
        // The fake's own answer must match the documented response (a mismatch is a bug in the fake: it fails
        // loudly, answered as 500 FakeFailure by listenHttps).
        const responseSchema = route.responses.get(String(answer.status));
        if (answer.body !== undefined && responseSchema !== undefined) {
            const wrong: ValidationError[] = [];
            spec.validate(answer.body, responseSchema, model.file, '', 'response', wrong);
            if (wrong.length > 0) {
                throw new Error(
                    `armKeyVaultFake: its ${route.operationId} answer does not match ${model.version}: ${wrong.map((e) => e.message).join('; ')}`,
                );
            }
        }
        record.applied = method !== 'GET';
        return finish(req, res, record, fault, answer);
    }

    /** Sends the provider's answer, unless the fault cuts it (reset, mid-body reset) or holds it (hang). */
    async function finish(
        req: IncomingMessage,
        res: ServerResponse,
        record: RecordedRequest,
        fault: ArmFault | undefined,
        answer: ArmAnswer,
    ): Promise<void> {
        if (fault !== undefined && 'reset' in fault) {
            if (fault.midBody === true) {
                // The answer starts (status, headers, half the body) and the connection drops.
                record.status = answer.status;
                const text = JSON.stringify(answer.body ?? {});
                res.writeHead(answer.status, {
                    'content-type': 'application/json; charset=utf-8',
                    'content-length': String(Buffer.byteLength(text)),
                });
                res.write(text.slice(0, Math.floor(text.length / 2)));
                await new Promise<void>((resolve) => setImmediate(resolve));
            }
            return resetConnection(req);
        }
        if (fault !== undefined && 'hang' in fault) return holdForever(res);
        return send(res, record, answer.status, answer.body, answer.headers);
    }

    function findVaultQuietly(id: string): Vault | undefined {
        try {
            return findVault(id);
        } catch {
            return undefined;
        }
    }

    const { server, port } = await listenHttps((req, res, raw) => handle(req, res, raw.toString('utf8')));

    return {
        url: `https://localhost:${port}`,
        caPem,
        requests,
        invalidRequests,
        apiVersions: supportedApiVersions,
        vault(resourceIdOrName) {
            const v = findVault(resourceIdOrName);
            if (v === undefined) throw new Error(`armKeyVaultFake: no vault ${resourceIdOrName}`);
            return structuredClone(v);
        },
        setVault: storeVault,
        deleteVault(resourceIdOrName) {
            const v = findVault(resourceIdOrName);
            if (v === undefined) return false;
            return vaults.delete(vaultKey(v.id));
        },
        onReadWriteWindow(writer) {
            windowWriter = writer;
            readSinceWrite.clear();
        },
        inject(fault) {
            const times = fault.times ?? 1;
            if (!Number.isInteger(times) || times < 1)
                throw new Error(`armKeyVaultFake: times must be >= 1, got ${times}`);
            faults.push({ fault: structuredClone(fault), remaining: times });
        },
        pendingFaults: () => faults.reduce((n, f) => n + f.remaining, 0),
        clearFaults: () => {
            faults.length = 0;
        },
        clearLog() {
            requests.length = 0;
            invalidRequests.length = 0;
        },
        async close() {
            closed = true;
            for (const t of timers) clearTimeout(t);
            timers.clear();
            for (const release of [...held]) release();
            await new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            });
        },
    };
}

/**
 * A vault in the shape GET returns, modelled on the spec's getVault.json example; override what a test needs. It is an
 * existing access-policy vault (`enableRbacAuthorization: false`); a vault created through Vaults_CreateOrUpdate on
 * 2026-02-01 without the switch uses RBAC instead.
 */
export function makeVault(params: {
    subscriptionId?: string;
    resourceGroup?: string;
    name?: string;
    location?: string;
    tenantId?: string;
    tags?: Record<string, string>;
    properties?: Partial<VaultProperties>;
}): Vault {
    const subscriptionId = params.subscriptionId ?? '00000000-0000-0000-0000-000000000001';
    const resourceGroup = params.resourceGroup ?? 'rg-kv';
    const name = params.name ?? 'kv-test';
    const tenantId = params.tenantId ?? '00000000-0000-0000-0000-0000000000aa';
    return {
        id: vaultIdFor(subscriptionId, resourceGroup, name),
        name,
        type: 'Microsoft.KeyVault/vaults',
        location: params.location ?? 'westeurope',
        tags: params.tags ?? {},
        systemData: {
            createdBy: 'kv-admin@example.com',
            createdByType: 'User',
            createdAt: '2026-01-01T12:00:00.000Z',
            lastModifiedBy: 'kv-admin@example.com',
            lastModifiedByType: 'User',
            lastModifiedAt: '2026-01-01T12:00:00.000Z',
        },
        properties: {
            tenantId,
            sku: { family: 'A', name: 'standard' },
            accessPolicies: [],
            vaultUri: `https://${name}.vault.azure.net/`,
            enabledForDeployment: false,
            enabledForDiskEncryption: false,
            enabledForTemplateDeployment: false,
            enableSoftDelete: true,
            softDeleteRetentionInDays: 90,
            enableRbacAuthorization: false,
            provisioningState: 'Succeeded',
            publicNetworkAccess: 'Enabled',
            ...params.properties,
        },
    };
}
