// The reconcile worker under faults: ARM error classes, state-store failures, a remediation that outlives its lease,
// and two processors racing on one batch. The ARM simulator behind the real @azure/arm-keyvault client; answers the
// simulator cannot give yet (400/404/409/412) come from a pipeline policy of the real client, so the SDK turns them
// into its own RestError exactly as it would for the service.
import { createHttpHeaders, type PipelinePolicy, RestError } from '@azure/core-rest-pipeline';
import { ArmVaultAdmin } from '../../shared/adapters/armVaultAdmin';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { createResponder } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import type { DecisionSink } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import {
    type PutResult,
    type StateKey,
    type StateStore,
    type StoredState,
    stateKey,
} from '../../shared/core/state/store';
import { type ArmKeyVaultFake, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import { armClientFor } from '../fakes/armClient';
import { TableClient } from '@azure/data-tables';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, TENANT, VAULT } from '../support/paymentsVault';

const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const RESPONDER = '5e5e5e5e-0000-4000-8000-00000000005e';

function openVault() {
    return paymentsVault({
        networkAcls: { bypass: 'None', defaultAction: 'Allow', ipRules: [{ value: '198.51.100.7/32' }] },
        publicNetworkAccess: 'Enabled',
        enableRbacAuthorization: false,
        accessPolicies: [{ tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List'] } }],
    });
}

const config = parseResponderConfig(
    {
        guardrails: {
            default: {
                networkDefaultAction: 'Deny',
                approvedIpRanges: ['198.51.100.0/24'],
                approvedPrincipals: [{ objectId: API, permissions: { secrets: ['get', 'list'] } }],
            },
            overrides: [{ match: { vaultName: VAULT }, mode: 'enforce', publicNetworkAccess: 'Disabled' }],
        },
        responderIdentities: [RESPONDER],
        remediation: { retryBudgetSeconds: 2 },
    },
    ruleIds,
    'test',
);

/** Answers the next `times` requests of `method` with `status` instead of sending them (an ARM error body). */
function answer(status: number, method: string, times = 1): PipelinePolicy {
    let left = times;
    return {
        name: `answer-${status}`,
        sendRequest: async (request, next) => {
            if (left <= 0 || request.method !== method) return next(request);
            left--;
            return {
                request,
                status,
                headers: createHttpHeaders({ 'content-type': 'application/json; charset=utf-8' }),
                bodyAsText: JSON.stringify({
                    error: { code: `Injected${status}`, message: `answered ${status} by the test` },
                }),
            };
        },
    };
}

/** Fails the next `times` requests of `method` as a reset connection does (the SDK's RestError, code ECONNRESET). */
function reset(method: string, times = 1): PipelinePolicy {
    let left = times;
    return {
        name: 'reset',
        sendRequest: async (request, next) => {
            if (left <= 0 || request.method !== method) return next(request);
            left--;
            throw new RestError('read ECONNRESET', { code: 'ECONNRESET', request });
        },
    };
}

/** A state store that throws a 503-like error on the next `times` writes whose row starts with `rowPrefix`. */
class FailingWrites implements StateStore {
    constructor(
        private readonly inner: StateStore,
        private readonly rowPrefix: string,
        public times = 1,
    ) {}
    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        return this.inner.getMany(keys);
    }
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        if (this.times > 0 && key.row.startsWith(this.rowPrefix)) {
            this.times--;
            return Promise.reject(Object.assign(new Error('Service Unavailable (injected)'), { statusCode: 503 }));
        }
        return this.inner.put(key, value, etag, expiresMs);
    }
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
}

/**
 * Counts the reads of the reconcile intent, and lets another writer change the intent right before this instance's
 * first write of its outcome (`unsent`).
 */
class IntentWatch implements StateStore {
    intentReads = 0;
    interfere: ((cur: StoredState) => unknown) | undefined;
    constructor(readonly inner: StateStore) {}
    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        this.intentReads += keys.filter((k) => k.row === 'reconcile|intent').length;
        return this.inner.getMany(keys);
    }
    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        const change = this.interfere;
        if (change !== undefined && key.row === 'reconcile|intent' && (value as { unsent?: unknown }).unsent) {
            this.interfere = undefined;
            const [cur] = await this.inner.getMany([key]);
            if (cur !== undefined) await this.inner.put(key, change(cur), cur.etag, expiresMs);
        }
        return this.inner.put(key, value, etag, expiresMs);
    }
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
}

/** A decision sink that fails the next `times` writes (the incident write of a batch failing). */
class FailingSink implements DecisionSink {
    readonly inner = new MemoryDecisionSink();
    constructor(public times = 1) {}
    write(decisions: readonly Decision[]): Promise<void> {
        if (this.times > 0) {
            this.times--;
            return Promise.reject(new Error('incident write failed (injected 503)'));
        }
        return this.inner.write(decisions);
    }
}

let fake: ArmKeyVaultFake;
let azurite: AzuriteService;
let tables = 0;
beforeAll(async () => {
    [fake, azurite] = await Promise.all([startArmKeyVaultFake(), startAzurite('table')]);
});
afterAll(async () => {
    await Promise.all([fake.close(), azurite.stop()]);
});

function azuriteTable(): StateStore {
    return new TableStateStore(
        TableClient.fromConnectionString(azurite.connectionString, `kvrrace${++tables}`, {
            allowInsecureConnection: true,
        }),
    );
}
beforeEach(() => {
    fake.setVault(openVault());
    fake.clearFaults();
    fake.clearLog();
});

function responder(
    options: {
        store?: StateStore;
        policies?: PipelinePolicy[];
        timeoutMs?: number;
        sink?: DecisionSink;
        owner?: string;
        leaseMs?: number;
    } = {},
) {
    const decisions = new MemoryDecisionSink();
    const admin = new ArmVaultAdmin(
        (sub) =>
            armClientFor(fake, sub, {
                retryOptions: { maxRetries: 0 },
                additionalPolicies: (options.policies ?? []).map((policy) => ({
                    policy,
                    position: 'perCall' as const,
                })),
            }),
        options.timeoutMs,
    );
    const r = createResponder(
        config,
        { decisions: options.sink ?? decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin,
            clock: systemClock,
            store: options.store ?? new MemoryStateStore(),
            ...(options.owner === undefined ? {} : { owner: options.owner }),
            ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
        },
    );
    return { decisions, pipeline: r.pipeline, responder: r };
}

function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    return body;
}

const actions = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');
const criticals = (ds: readonly Decision[]) =>
    ds.filter((d): d is FindingDecision => d.type === 'finding' && d.severity === 'critical');
const writes = () => fake.requests.filter((r) => r.method !== 'GET');
const compliant = () => fake.vault(VAULT).properties.networkAcls?.defaultAction === 'Deny';

describe('every ARM error class ends in a defined outcome', () => {
    it.each([400, 401, 409, 412])(
        'HTTP %i on the PATCH: failed with a critical remediation-failed, no exception',
        async (status) => {
            const { decisions, pipeline } = responder({ policies: [answer(status, 'PATCH')] });
            await pipeline.processBatch([{ body: attackBody() }]);
            const failed = actions(decisions.decisions).filter((a) => a.status === 'failed');
            expect(failed.map((a) => a.action)).toContain('restore-firewall-default');
            expect(
                failed.every((a) => a.detail.stage === 'apply' && String(a.detail.error).includes(`HTTP ${status}`)),
            ).toBe(true);
            const critical = criticals(decisions.decisions);
            expect(critical.map((f) => [f.rule, f.stage, f.status])).toEqual([['remediation-failed', 'apply', status]]);
        },
    );

    it('HTTP 403 on the PATCH marks the missing permission', async () => {
        fake.inject({ status: 403, match: { method: 'PATCH' } });
        const { decisions, pipeline } = responder();
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(actions(decisions.decisions).find((a) => a.status === 'failed')?.detail.missingPermission).toBe(true);
        expect(criticals(decisions.decisions)[0]).toMatchObject({
            rule: 'remediation-failed',
            missingPermission: true,
        });
    });

    it('HTTP 404 on the read: the vault is gone, skipped without a critical finding', async () => {
        const { decisions, pipeline } = responder({ policies: [answer(404, 'GET')] });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(actions(decisions.decisions).map((a) => [a.status, a.detail.reason])).toContainEqual([
            'skipped',
            'vault-gone',
        ]);
        expect(criticals(decisions.decisions)).toEqual([]);
        expect(writes()).toEqual([]);
    });

    it('HTTP 404 on the PATCH (deleted meanwhile): skipped vault-gone', async () => {
        const { decisions, pipeline } = responder({ policies: [answer(404, 'PATCH')] });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(actions(decisions.decisions).map((a) => [a.action, a.status, a.detail.reason])).toContainEqual([
            'restore-firewall-default',
            'skipped',
            'vault-gone',
        ]);
        expect(criticals(decisions.decisions)).toEqual([]);
    });

    it('429 without Retry-After and a 503 are retried within the budget and the vault ends compliant', async () => {
        fake.inject({ status: 429, match: { method: 'PATCH' } });
        fake.inject({ status: 503, match: { method: 'GET' } });
        const { decisions, pipeline } = responder();
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(compliant()).toBe(true);
        expect(criticals(decisions.decisions)).toEqual([]);
    });

    it('5xx past the retry budget: failed with a critical finding naming the stage', async () => {
        fake.inject({ status: 503, match: { method: 'PATCH' }, times: 50 });
        const { decisions, pipeline } = responder();
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(criticals(decisions.decisions).map((f) => [f.rule, f.stage])).toEqual([['remediation-failed', 'apply']]);
        fake.clearFaults();
    });
});

describe('timeouts and connection resets', () => {
    it('a connection reset on the PATCH is retried and the vault ends compliant', async () => {
        const { decisions, pipeline } = responder({ policies: [reset('PATCH', 2)] });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(compliant()).toBe(true);
        expect(criticals(decisions.decisions)).toEqual([]);
    });

    it('reads that keep timing out past the budget: failed at read with a critical finding, no exception', async () => {
        fake.inject({ delayMs: 700, match: { method: 'GET' }, times: 30 });
        const { decisions, pipeline } = responder({ timeoutMs: 150 });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(criticals(decisions.decisions).map((f) => [f.rule, f.stage])).toEqual([['remediation-failed', 'read']]);
        expect(writes()).toEqual([]);
        fake.clearFaults();
        await new Promise((resolve) => setTimeout(resolve, 800)); // the held GETs finish inside this test
    });
});

describe('the reconcile intent through a run', () => {
    it('is read when recorded and under the lease only: its outcome and completion are compare-and-set on what was read', async () => {
        const store = new IntentWatch(new MemoryStateStore());
        const { decisions, pipeline } = responder({ store });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(compliant()).toBe(true);
        expect(actions(decisions.decisions).filter((a) => a.status === 'applied').length).toBeGreaterThan(0);
        // The pipeline's merge reads it once; the run reads it under the lease (the in-process drain skips the read
        // before the lease for the message the batch just sent); setUnsent and complete write on the ETag of what the
        // run read and wrote (before: three more reads).
        expect(store.intentReads).toBe(2);
        const [intent] = await store.inner.getMany([stateKey('kv-payments-prod', 'reconcile|intent')]);
        const i = intent?.value as { version: number; processed: number; unsent?: unknown };
        expect(i.processed).toBe(i.version);
        expect(i.unsent).toBeUndefined();
    });

    it('another writer changing the intent meanwhile: the write reads it again, and what it added stays pending', async () => {
        const store = new IntentWatch(new MemoryStateStore());
        store.interfere = (cur) => {
            const i = cur.value as { version: number; latestMs: number };
            return { ...i, version: i.version + 1, latestMs: i.latestMs + 1 };
        };
        const { pipeline } = responder({ store });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(store.interfere).toBeUndefined();
        expect(compliant()).toBe(true);
        const [intent] = await store.inner.getMany([stateKey('kv-payments-prod', 'reconcile|intent')]);
        const i = intent?.value as { version: number; processed: number };
        // The run completed the version it read; the newer one stays for the next run.
        expect(i.processed).toBe(i.version - 1);
    });
});

describe('state-store and sink failures never lose a remediation', () => {
    it('one 503 on the lease write: the worker retries and the vault ends remediated', async () => {
        const store = new FailingWrites(new MemoryStateStore(), 'remediation|lease');
        const { decisions, pipeline } = responder({ store });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(store.times).toBe(0);
        expect(compliant()).toBe(true);
        expect(actions(decisions.decisions).filter((a) => a.status === 'applied').length).toBeGreaterThan(0);
    });

    it('the batch fails at the incident write after remediating: the redelivery still reports the applied change with its undo id', async () => {
        const sink = new FailingSink(1);
        const store = new MemoryStateStore();
        const first = responder({ store, sink });
        await expect(first.pipeline.processBatch([{ body: attackBody() }])).rejects.toThrow('incident write failed');
        // Redelivery of the same batch (a fresh worker instance on the same state).
        const again = responder({ store, sink });
        await again.pipeline.processBatch([{ body: attackBody() }]);
        expect(compliant()).toBe(true);
        const applied = actions(sink.inner.decisions).filter((a) => a.status === 'applied');
        expect(applied.map((a) => a.action)).toContain('restore-firewall-default');
        expect(applied.every((a) => typeof a.detail.undoId === 'string')).toBe(true);
        expect(writes().filter((r) => r.method === 'PATCH')).toHaveLength(1);
    });

    it('the batch fails after detection (state 503 on the intent write): the redelivery remediates', async () => {
        const store = new FailingWrites(new MemoryStateStore(), 'reconcile|intent');
        const first = responder({ store });
        await expect(first.pipeline.processBatch([{ body: attackBody() }])).rejects.toThrow();
        expect(compliant()).toBe(false);
        await first.pipeline.processBatch([{ body: attackBody() }]);
        expect(compliant()).toBe(true);
    });
});

describe('per-vault serialization', () => {
    it('a remediation that outlives the lease keeps it by renewal: the second processor does not act too', async () => {
        const store = new MemoryStateStore();
        fake.inject({ delayMs: 1500, match: { method: 'PATCH' } });
        const a = responder({ store, owner: 'a', leaseMs: 600 });
        const b = responder({ store, owner: 'b', leaseMs: 600 });
        const first = a.pipeline.processBatch([{ body: attackBody() }]);
        await new Promise((r) => setTimeout(r, 900));
        await Promise.all([first, b.pipeline.processBatch([{ body: attackBody() }])]);
        expect(writes().filter((r) => r.method === 'PATCH')).toHaveLength(1);
        expect(compliant()).toBe(true);
    });

    it.each([
        ['one memory store', 15, () => new MemoryStateStore() as StateStore],
        ['one Azurite table', 20, azuriteTable],
    ])(
        'two processors get the same batch (%s), round after round: compliant or critical, no duplicate writes',
        async (_name, rounds, makeStore) => {
            for (let round = 0; round < rounds; round++) {
                // A fresh store per round: one vault remediated every round would (rightly) hit the hourly cap.
                const store = makeStore();
                fake.setVault(openVault());
                fake.clearLog();
                const a = responder({ store, owner: 'a' });
                const b = responder({ store, owner: 'b' });
                const body = attackBody();
                (body.records[0] as { correlationId: string }).correlationId = `race-${round}`;
                await Promise.all([a.pipeline.processBatch([{ body }]), b.pipeline.processBatch([{ body }])]);
                const critical = [...criticals(a.decisions.decisions), ...criticals(b.decisions.decisions)];
                expect(compliant() || critical.length > 0).toBe(true);
                expect(writes().filter((r) => r.method === 'PATCH')).toHaveLength(1);
            }
        },
    );
});
