// The fault-injection suite (issue 11, "Done when"): drives the reconcile loop end to end through real parts and
// counts what must never happen. Per round: a fresh vault opened to the internet in the ARM simulator (served over
// HTTPS to the real @azure/arm-keyvault client), two responders (two processors) sharing one Azurite table, one Azurite
// queue and the simulator, alerting on (recording Teams channel), one injected fault or race, the same audit batch
// delivered to both processors three times, the queue drained after each delivery as the Functions host does
// (redelivery of a failed message up to maxDequeueCount, then the poison handler), then the end state read from ARM.
//
// The four counts, per round (a round counts at most 1 in each):
// (a) non-compliant without a critical alert: the vault still exists in ARM and violates its policy (see
//     `violations`), and no critical `remediation-failed` / `remediation-suspended` finding (the poison handler's
//     included) for that vault reached either processor's decision sink.
// (b) legitimate change lost without restore or alert: an approved item (the approved IP rule and access policy the
//     vault started with, and in the read→write window row the approved IP rule another writer added) is missing from
//     the end state while the vault exists, and no critical finding for the vault reached a decision sink.
// (c) duplicate ARM writes: applied writes (PATCH/PUT that the simulator applied) to the vault repeating an identical
//     applied write (same method, path and body), minus the repeats explained by the fault itself (a write whose
//     answer was lost: reset or hang after apply, or a late answer the client had abandoned at its per-call time
//     limit, as a pipeline policy on the client records, is retried by design).
// (d) uncaught exceptions: an `uncaughtException`/`unhandledRejection` in the process; or an exception that escaped
//     the queue trigger handler, the poison handler or the audit batch that is not the designed retry signal (a
//     state-store `STATE.*` error or a queue send failure, which the host redelivers).
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { ArmVaultAdmin } from '../../shared/adapters/armVaultAdmin';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { StorageReconcileQueue } from '../../shared/adapters/storageReconcileQueue';
import { systemClock } from '../../shared/adapters/systemClock';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder, reconcileDepsOf, type Responder } from '../../shared/app/createPipeline';
import {
    handleReconcilePoison,
    handleReconcileVault,
    type ReconcileDeps,
} from '../../shared/app/handlers/handleReconcile';
import { MAX_DEQUEUE } from '../../shared/app/reconciler';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision } from '../../shared/core/decisions';
import { ResponderError } from '../../shared/core/errors';
import type { ReconcileMessage, ReconcileQueue } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import {
    type ArmFault,
    type ArmKeyVaultFake,
    makeVault,
    type Vault,
    startArmKeyVaultFake,
} from '../../shared/simulation/armSimulator';
import { FaultyStateStore } from '../../shared/simulation/faultyStateStore';
import { armClientFor } from '../fakes/armClient';
import { RecordingChannel } from '../support/alertingDoubles';
import { startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureBody } from '../support/fixtures';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const MALLORY = 'dddddddd-0000-4000-8000-00000000000d';
const ALICE = 'a1a1a1a1-0000-4000-8000-0000000000a1';
const RESPONDER = '5e5e5e5e-0000-4000-8000-00000000005e';
const APPROVED_IP = '198.51.100.7/32';
const ALICE_IP = '198.51.100.99/32';

/** Harness timings: a short lease (renewed every third), a short ARM call limit so hangs end quickly. */
export const LEASE_MS = 1000;
const ARM_TIMEOUT_MS = 1500;
/** The lease row's PATCH answers later than the lease lasts (but within the call limit). */
const PAST_LEASE_MS = LEASE_MS + 300;
const ROUND_LIMIT_MS = 90_000;

const config = parseResponderConfig(
    {
        guardrails: {
            default: {
                mode: 'enforce',
                networkDefaultAction: 'Deny',
                publicNetworkAccess: 'Disabled',
                approvedIpRanges: ['198.51.100.0/24'],
                approvedPrincipals: [{ objectId: API, permissions: { secrets: ['get', 'list'] } }],
            },
        },
        responderIdentities: [RESPONDER],
        remediation: { retryBudgetSeconds: 2 },
        alerting: { rosters: { default: { tiers: [{ name: 'secops', email: [], teams: true }] } } },
    },
    ruleIds,
    'faults',
);

type TableTarget = 'lease' | 'intent' | 'incident';

export interface FaultRow {
    readonly name: string;
    /** An ARM fault on the round's vault (`method` alternates GET/PATCH by round when not fixed). */
    readonly arm?: (round: number) => { fault: ArmFault; method: 'GET' | 'PATCH' };
    /** A 503 on the first matching Table Storage write of each processor. */
    readonly table?: TableTarget;
    readonly queueSend?: boolean;
    /** Something happens in the read→write window of the first write. */
    readonly window?: 'delete-vault' | 'legit-change';
}

const status = (s: ArmFault & { status: number }) => (round: number) => ({
    fault: s,
    method: round % 3 === 0 ? ('GET' as const) : ('PATCH' as const),
});

export const ROWS: readonly FaultRow[] = [
    { name: 'none (two processors, same batch)' },
    { name: 'ARM 400', arm: status({ status: 400 }) },
    { name: 'ARM 401', arm: status({ status: 401 }) },
    { name: 'ARM 403', arm: status({ status: 403 }) },
    { name: 'ARM 404 (vault deleted meanwhile)', window: 'delete-vault' },
    { name: 'ARM 408', arm: status({ status: 408 }) },
    { name: 'ARM 409', arm: status({ status: 409 }) },
    { name: 'ARM 412', arm: status({ status: 412 }) },
    { name: 'ARM 429 with Retry-After', arm: status({ status: 429, retryAfterSeconds: 1 }) },
    { name: 'ARM 429 without Retry-After', arm: status({ status: 429 }) },
    { name: 'ARM 500', arm: status({ status: 500 }) },
    { name: 'ARM 502', arm: status({ status: 502 }) },
    { name: 'ARM 503', arm: status({ status: 503 }) },
    { name: 'ARM 504', arm: status({ status: 504 }) },
    { name: 'ARM hang (timeout)', arm: (r) => ({ fault: { hang: true }, method: r % 2 ? 'GET' : 'PATCH' }) },
    { name: 'ARM hang after apply', arm: () => ({ fault: { hang: true, applied: true }, method: 'PATCH' }) },
    { name: 'ARM reset before apply', arm: (r) => ({ fault: { reset: true }, method: r % 2 ? 'GET' : 'PATCH' }) },
    { name: 'ARM reset after apply', arm: () => ({ fault: { reset: true, applied: true }, method: 'PATCH' }) },
    { name: 'Table 503 on the lease write', table: 'lease' },
    { name: 'Table 503 on the intent write', table: 'intent' },
    { name: 'Table 503 on the incident write', table: 'incident' },
    { name: 'queue send failure', queueSend: true },
    { name: 'legitimate change in the read→write window', window: 'legit-change' },
    {
        name: 'remediation outlives the lease (PATCH slower than the lease)',
        arm: () => ({ fault: { delayMs: PAST_LEASE_MS }, method: 'PATCH' }),
    },
];

export interface RowResult {
    readonly row: string;
    rounds: number;
    readonly outcomes: Map<string, number>;
    nonCompliantSilent: number;
    lostSilent: number;
    duplicateWrites: number;
    uncaught: number;
    /** Rounds in which the injected fault or race did not happen (the row would prove nothing): must be 0. */
    notExercised: number;
    /** One line per round that counted, for the report. */
    readonly notes: string[];
}

/** A queue send failure as the storage SDK surfaces one (a RestError-like 503). */
class QueueSendError extends Error {
    readonly statusCode = 503;
    constructor() {
        super('The server is busy (injected queue send failure)');
        this.name = 'RestError';
    }
}

class FaultyQueue implements ReconcileQueue {
    failures = 0;
    constructor(private readonly inner: ReconcileQueue) {}
    send(message: ReconcileMessage, options?: { readonly visibilityDelayMs?: number }): Promise<void> {
        if (this.failures > 0) {
            this.failures--;
            return Promise.reject(new QueueSendError());
        }
        return this.inner.send(message, options);
    }
}

/** The designed retry signal: a state-store or queue failure, which the host answers by redelivering. */
function isRetrySignal(err: unknown): boolean {
    if (err instanceof QueueSendError) return true;
    if (err instanceof ResponderError && err.code.startsWith('STATE.')) return true;
    return false;
}

function describe(err: unknown): string {
    return err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 300) : String(err);
}

export interface RunResult {
    readonly rows: readonly RowResult[];
    /** `uncaughtException` / `unhandledRejection` events in the process during the run (count (d) too). */
    readonly processUncaught: number;
}

export interface Harness {
    /** Runs `rounds` rounds of every row, `concurrency` rounds at a time (each round has its own vault and queue). */
    runRows(
        rows: readonly FaultRow[],
        rounds: number,
        concurrency: number,
        progress?: (done: number, total: number) => void,
    ): Promise<RunResult>;
    close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
    const [fake, table, queues] = await Promise.all([
        startArmKeyVaultFake(),
        startAzurite('table'),
        startAzurite('queue'),
    ]);
    const tableStore = new TableStateStore(
        TableClient.fromConnectionString(table.connectionString, 'kvrfaults', { allowInsecureConnection: true }),
    );
    const windowHooks = new Map<string, (vaultId: string) => void>();
    const firedHooks = new Set<string>();
    fake.onReadWriteWindow((vaultId) => {
        const name = vaultId.split('/').pop()?.toLowerCase() ?? '';
        const hook = windowHooks.get(name);
        if (hook !== undefined) {
            windowHooks.delete(name);
            firedHooks.add(name);
            hook(vaultId);
        }
    });
    // Writes the client gave up on (its per-call limit): a late answer may still apply, and the retry repeats it.
    const abandoned = new Map<string, number>();
    const abandonedWrites: PipelinePolicy = {
        name: 'faults-abandoned-writes',
        sendRequest: async (request, next) => {
            try {
                return await next(request);
            } catch (err) {
                const name = (err as { name?: string }).name;
                if (request.method !== 'GET' && (name === 'AbortError' || name === 'TimeoutError')) {
                    const vault = /\/vaults\/([^/?]+)/i.exec(request.url)?.[1]?.toLowerCase() ?? '';
                    abandoned.set(vault, (abandoned.get(vault) ?? 0) + 1);
                }
                throw err;
            }
        },
    };
    let processUncaught = 0;
    const onUncaught = (): void => {
        processUncaught++;
    };
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    let seq = 0;

    const runRows: Harness['runRows'] = async (rows, rounds, concurrency, progress) => {
        const results = rows.map((row): RowResult => ({
            row: row.name,
            rounds: 0,
            outcomes: new Map(),
            nonCompliantSilent: 0,
            lostSilent: 0,
            duplicateWrites: 0,
            uncaught: 0,
            notExercised: 0,
            notes: [],
        }));
        const before = processUncaught;
        const jobs = rows.flatMap((row, i) => Array.from({ length: rounds }, (_, round) => ({ row, i, round })));
        let next = 0;
        let done = 0;
        const worker = async (): Promise<void> => {
            for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) {
                const result = results[job.i] as RowResult;
                try {
                    await runRound(job.row, job.round, seq++, result);
                } catch (err) {
                    // A harness failure (Azurite, the simulator): counted, never hidden.
                    result.uncaught++;
                    result.notes.push(`round ${job.round}: the round itself failed: ${describe(err)}`);
                }
                result.rounds++;
                progress?.(++done, jobs.length);
            }
        };
        await Promise.all(Array.from({ length: Math.max(1, concurrency) }, () => worker()));
        return { rows: results, processUncaught: processUncaught - before };
    };

    async function runRound(row: FaultRow, round: number, n: number, result: RowResult): Promise<void> {
        const vaultName = `kv-fi-${n}`;
        const vaultId = `/subscriptions/${SUB}/resourceGroups/rg-faults/providers/Microsoft.KeyVault/vaults/${vaultName}`;
        fake.setVault(openVault(vaultName));
        const queueClient = new QueueClient(queues.connectionString, `kvr-fi-${n}`);
        await queueClient.createIfNotExists();
        const storageQueue = new StorageReconcileQueue(queueClient);
        const p1 = processor(`p1-${n}`, storageQueue);
        const p2 = processor(`p2-${n}`, storageQueue);
        const processors = [p1, p2];
        let uncaught = 0;
        const escaped = (where: string, err: unknown): void => {
            if (isRetrySignal(err)) return;
            uncaught++;
            result.notes.push(`round ${round}: exception escaped ${where}: ${describe(err)}`);
        };

        // The fault of this row.
        let aliceAt = '';
        let windowFired = false;
        if (row.arm !== undefined) {
            const { fault, method } = row.arm(round);
            fake.inject({ ...fault, match: { method, pathIncludes: `/vaults/${vaultName}` } });
        }
        if (row.table !== undefined) {
            const key = { lease: /remediation\|lease/, intent: /reconcile\|intent/, incident: /incident\|/ }[row.table];
            // On both processors' first such write: whichever of them gets there first meets the 503.
            for (const p of processors) p.store.inject({ kind: 'server-busy', ops: ['put'], key });
        }
        if (row.queueSend === true) p1.queue.failures = 1;
        if (row.window === 'delete-vault') windowHooks.set(vaultName, () => void fake.deleteVault(vaultName));
        if (row.window === 'legit-change') {
            windowHooks.set(vaultName, (id) => {
                const v = fake.vault(id);
                const acls = v.properties.networkAcls ?? {};
                fake.setVault({
                    ...v,
                    properties: {
                        ...v.properties,
                        networkAcls: { ...acls, ipRules: [...(acls.ipRules ?? []), { value: ALICE_IP }] },
                    },
                });
                aliceAt = new Date().toISOString();
            });
        }

        const deliver = async (p: Processor, body: unknown): Promise<void> => {
            // Event Hubs redelivers a failed batch (the checkpoint did not move): up to 5 tries here.
            for (let attempt = 1; attempt <= 5; attempt++) {
                try {
                    await p.responder.pipeline.processBatch([{ body }]);
                    return;
                } catch (err) {
                    escaped('the audit batch', err);
                }
            }
        };
        const attack = attackBody(vaultId);
        const deadline = Date.now() + ROUND_LIMIT_MS;
        let timedOut = false;
        // The same batch to both processors, three times; the queue drained by both after each delivery.
        for (let d = 0; d < 3; d++) {
            await Promise.all(processors.map((p) => deliver(p, attack)));
            timedOut ||= !(await drain(queueClient, processors, deadline, escaped));
        }
        if (row.window === 'legit-change' && aliceAt !== '') {
            // alice's own audit record arrives later (the stream is minutes behind).
            await deliver(p2, aliceBody(vaultId, aliceAt));
            timedOut ||= !(await drain(queueClient, processors, deadline, escaped));
        }
        windowHooks.delete(vaultName);
        windowFired = firedHooks.delete(vaultName);
        await queueClient.delete().catch(() => undefined);

        // The end state, from ARM through the real client.
        const decisions = processors.flatMap((p) => p.decisions.decisions);
        const alerted = decisions.some(
            (d) =>
                d.type === 'finding' &&
                d.severity === 'critical' &&
                (d.rule === 'remediation-failed' || d.rule === 'remediation-suspended') &&
                d.vault === vaultName,
        );
        const end = await readVault(fake, vaultName);
        const bad = end === undefined ? [] : violations(end);
        const lost = end === undefined ? [] : lostItems(end, aliceAt !== '');
        const dup = duplicateWrites(fake, vaultName, abandoned.get(vaultName) ?? 0);
        abandoned.delete(vaultName);
        let outcome =
            end === undefined ? 'vault gone' : bad.length === 0 ? 'compliant' : alerted ? 'open + critical' : 'OPEN';
        if (alerted && end !== undefined && bad.length === 0) outcome = 'compliant + critical';
        if (lost.length > 0) outcome += alerted ? ' (lost, alerted)' : ' (LOST)';
        if (timedOut) outcome += ' (drain timed out)';
        result.outcomes.set(outcome, (result.outcomes.get(outcome) ?? 0) + 1);
        if (bad.length > 0 && !alerted) {
            result.nonCompliantSilent++;
            result.notes.push(`round ${round}: ${vaultName} non-compliant without alert: ${bad.join('; ')}`);
        }
        if (lost.length > 0 && !alerted) {
            result.lostSilent++;
            result.notes.push(`round ${round}: ${vaultName} lost ${lost.join(', ')} without restore or alert`);
        }
        if (dup.count > 0) {
            result.duplicateWrites += dup.count;
            result.notes.push(`round ${round}: ${vaultName} duplicate writes: ${dup.detail}`);
        }
        result.uncaught += uncaught;
        const exercised =
            (row.arm === undefined ||
                fake.requests.some(
                    (r) => r.fault !== undefined && r.path.toLowerCase().includes(`/vaults/${vaultName}`),
                )) &&
            (row.table === undefined || processors.some((p) => p.store.injected.length > 0)) &&
            (row.queueSend !== true || p1.queue.failures === 0) &&
            (row.window === undefined || windowFired);
        if (!exercised) {
            result.notExercised++;
            result.notes.push(`round ${round}: the fault was not exercised`);
        }
    }

    interface Processor {
        readonly responder: Responder;
        readonly store: FaultyStateStore;
        readonly queue: FaultyQueue;
        readonly decisions: MemoryDecisionSink;
        readonly deps: ReconcileDeps;
    }

    function processor(owner: string, queue: ReconcileQueue): Processor {
        const store = new FaultyStateStore(tableStore);
        const faultyQueue = new FaultyQueue(queue);
        const decisions = new MemoryDecisionSink();
        const responder = createResponder(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                admin: new ArmVaultAdmin(
                    (sub) =>
                        armClientFor(fake, sub, {
                            retryOptions: { maxRetries: 0 },
                            additionalPolicies: [{ policy: abandonedWrites, position: 'perCall' }],
                        }),
                    ARM_TIMEOUT_MS,
                ),
                clock: systemClock,
                store,
                owner,
                queue: faultyQueue,
                leaseMs: LEASE_MS,
                armCallLimitMs: ARM_TIMEOUT_MS,
                busyDelayMs: 200,
                alerting: {
                    channels: { teams: new RecordingChannel('teams') },
                    links: new LinkTokens(
                        LocalLinkSigner.generate('k'),
                        'https://kvr.example.net',
                        3_600_000,
                        systemClock,
                    ),
                    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
                },
            },
        );
        // The worker's queue is the faulty one the responder was given.
        const deps = reconcileDepsOf(responder, systemClock);
        return { responder, store, queue: faultyQueue, decisions, deps };
    }

    return {
        runRows,
        close: async () => {
            process.off('uncaughtException', onUncaught);
            process.off('unhandledRejection', onUncaught);
            fake.onReadWriteWindow(undefined);
            await Promise.all([fake.close(), table.stop(), queues.stop()]);
        },
    };
}

/**
 * Drains the round's queue with both processors at once, as two Functions instances would: a message whose handler
 * throws becomes visible again (its dequeue count rising); at `MAX_DEQUEUE` failed deliveries the poison handler runs.
 * Returns false if the queue did not empty before the deadline.
 */
async function drain(
    client: QueueClient,
    processors: readonly { readonly deps: ReconcileDeps }[],
    deadline: number,
    escaped: (where: string, err: unknown) => void,
): Promise<boolean> {
    let inFlight = 0;
    let idle = false;
    const consume = async (deps: ReconcileDeps): Promise<void> => {
        while (!idle && Date.now() < deadline) {
            const r = await client.receiveMessages({ numberOfMessages: 1, visibilityTimeout: 30 });
            const m = r.receivedMessageItems[0];
            if (m === undefined) {
                if (inFlight === 0 && (await client.getProperties()).approximateMessagesCount === 0) {
                    if (inFlight === 0) idle = true;
                    return;
                }
                await new Promise((resolve) => setTimeout(resolve, 50));
                continue;
            }
            inFlight++;
            try {
                const message: unknown = JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8'));
                // The host's own queue calls after the handler (delete, or release for a retry) fail when the
                // message's visibility timeout ran out meanwhile (a handler slower than 30 s on a starved machine:
                // another instance received it, and the old pop receipt answers 404 or 400). The host logs that and
                // the message is delivered again; the handler is idempotent. Not an exception out of the handler.
                const hostCall = (p: Promise<unknown>): Promise<unknown> => p.catch(() => undefined);
                let handled = false;
                try {
                    await handleReconcileVault(message, makeContext({ dequeueCount: m.dequeueCount }).context, deps);
                    handled = true;
                } catch (err) {
                    escaped('the queue trigger', err);
                }
                if (handled) await hostCall(client.deleteMessage(m.messageId, m.popReceipt));
                else if (m.dequeueCount >= MAX_DEQUEUE) {
                    // The host moves it to the poison queue; its trigger raises the critical alert.
                    await hostCall(client.deleteMessage(m.messageId, m.popReceipt));
                    await handleReconcilePoison(message, makeContext().context, deps).catch((e: unknown) =>
                        escaped('the poison handler', e),
                    );
                } else {
                    // host.json visibilityTimeout (30 s in Azure; no wait in the harness).
                    await hostCall(client.updateMessage(m.messageId, m.popReceipt, undefined, 0));
                }
            } finally {
                inFlight--;
            }
        }
    };
    await Promise.all(processors.map((p) => consume(p.deps)));
    return Date.now() < deadline;
}

function openVault(name: string): Vault {
    return makeVault({
        subscriptionId: SUB,
        resourceGroup: 'rg-faults',
        name,
        tenantId: TENANT,
        properties: {
            networkAcls: {
                bypass: 'None',
                defaultAction: 'Allow',
                ipRules: [{ value: APPROVED_IP }, { value: '203.0.113.50/32' }],
            },
            publicNetworkAccess: 'Enabled',
            enableRbacAuthorization: false,
            accessPolicies: [
                { tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List'] } },
                { tenantId: TENANT, objectId: MALLORY, permissions: { secrets: ['Get', 'List', 'Set', 'Delete'] } },
            ],
        },
    });
}

/** mallory's VaultPatch that opened the firewall, on the round's vault. */
function attackBody(vaultId: string): unknown {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string; time: string };
    r.resourceId = vaultId.toUpperCase();
    r.time = new Date().toISOString();
    return body;
}

/** The audit record of alice's write in the window: a VaultPatch whose after-state carries her approved IP rule. */
function aliceBody(vaultId: string, at: string): unknown {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as Record<string, unknown> & { properties: { properties: Record<string, unknown> } };
    r.resourceId = vaultId.toUpperCase();
    r.time = at;
    r.correlationId = `a11ce000-0000-4000-8000-${String(Date.now() % 1e12).padStart(12, '0')}`;
    r.callerIpAddress = '198.51.100.20';
    r.identity = {
        claim: {
            'http://schemas.microsoft.com/identity/claims/objectidentifier': ALICE,
            'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': 'alice@contoso.example',
        },
    };
    r.properties.properties.networkAcls = {
        bypass: 'None',
        defaultAction: 'Allow',
        ipRules: [{ value: APPROVED_IP }, { value: '203.0.113.50/32' }, { value: ALICE_IP }],
        virtualNetworkRules: [],
    };
    return body;
}

async function readVault(fake: ArmKeyVaultFake, name: string): Promise<Vault | undefined> {
    const client = armClientFor(fake, SUB, { retryOptions: { maxRetries: 0 } });
    try {
        return (await client.vaults.get('rg-faults', name)) as unknown as Vault;
    } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined;
        throw err;
    }
}

const ip = (v: string) => (v.endsWith('/32') ? v : `${v}/32`);

/** What in the vault violates its policy (independent of the responder's planner). */
export function violations(v: Vault): string[] {
    const out: string[] = [];
    const acls = v.properties.networkAcls;
    if (acls?.defaultAction !== 'Deny') out.push(`defaultAction ${String(acls?.defaultAction)}`);
    for (const r of acls?.ipRules ?? []) if (!r.value.startsWith('198.51.100.')) out.push(`ip rule ${r.value}`);
    if (v.properties.publicNetworkAccess !== 'Disabled')
        out.push(`publicNetworkAccess ${String(v.properties.publicNetworkAccess)}`);
    if (v.properties.enableRbacAuthorization !== true) {
        for (const p of v.properties.accessPolicies ?? []) {
            const perms = Object.values(p.permissions ?? {})
                .flat()
                .filter((x) => x !== undefined && x !== null)
                .map((x) => String(x).toLowerCase());
            if (p.objectId !== API || perms.some((x) => x !== 'get' && x !== 'list'))
                out.push(`access policy ${p.objectId} ${perms.join(',')}`);
        }
    }
    return out;
}

function lostItems(v: Vault, aliceWrote: boolean): string[] {
    const ips = new Set((v.properties.networkAcls?.ipRules ?? []).map((r) => ip(r.value)));
    const out: string[] = [];
    if (!ips.has(APPROVED_IP)) out.push(`ip rule ${APPROVED_IP}`);
    if (aliceWrote && !ips.has(ALICE_IP)) out.push(`alice's ip rule ${ALICE_IP}`);
    if (!(v.properties.accessPolicies ?? []).some((p) => p.objectId === API)) out.push(`access policy ${API}`);
    return out;
}

function duplicateWrites(
    fake: ArmKeyVaultFake,
    name: string,
    abandonedByClient: number,
): { count: number; detail: string } {
    const mine = fake.requests.filter(
        (r) => r.method !== 'GET' && r.applied === true && r.path.toLowerCase().includes(`/vaults/${name}`),
    );
    const seen = new Map<string, number>();
    let explained = 0;
    let lateApplied = 0;
    for (const r of mine) {
        const key = `${r.method} ${r.path.replace(/^.*\/vaults\//i, '')} ${JSON.stringify(r.body)}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        const f = r.fault as { reset?: boolean; hang?: boolean; delayMs?: number } | undefined;
        if (f?.reset === true || f?.hang === true) explained++;
        else if (f?.delayMs !== undefined) lateApplied++;
    }
    // A late answer the client had given up on (its time limit passed first, e.g. on a busy machine).
    explained += Math.min(lateApplied, abandonedByClient);
    let repeats = 0;
    for (const c of seen.values()) repeats += c - 1;
    const count = Math.max(0, repeats - explained);
    const detail = [...seen.entries()]
        .filter(([, c]) => c > 1)
        .map(([k, c]) => `${c}× ${k.slice(0, 60)}`)
        .concat(mine.map((r) => `${r.method} status ${r.status} fault ${JSON.stringify(r.fault ?? null)}`))
        .join(' | ');
    return { count, detail };
}

/** The results as a Markdown table. */
export function formatTable(results: readonly RowResult[]): string {
    const lines = [
        '| fault | rounds | outcomes | (a) open, no alert | (b) lost, no alert | (c) duplicate writes | (d) uncaught |',
        '|---|---|---|---|---|---|---|',
    ];
    for (const r of results) {
        const outcomes = [...r.outcomes.entries()]
            .sort((x, y) => y[1] - x[1])
            .map(([k, c]) => `${k} ${c}`)
            .join(', ');
        lines.push(
            `| ${r.row} | ${r.rounds} | ${outcomes} | ${r.nonCompliantSilent} | ${r.lostSilent} | ${r.duplicateWrites} | ${r.uncaught} |`,
        );
    }
    return lines.join('\n');
}

export type { Decision };
