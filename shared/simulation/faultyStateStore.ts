// A StateStore decorator that injects the failures Azure Table Storage produces, shaped as the production adapter
// (shared/adapters/tableStateStore.ts) surfaces them through the port, so that code over the port can be tested
// against every failure class with MemoryStateStore (fast) or TableStateStore on Azurite (real) underneath.
//
// What @azure/data-tables 13.x throws (measured with the real client against Azurite and against a local endpoint
// answering each status, see test/integration/faultyStateStore.test.ts), and what the port makes of it:
//
// | fault kind            | Table Storage answer (status, x-ms-error-code)   | data-tables throws                       | port (TableStateStore) surfaces                       |
// |-----------------------|--------------------------------------------------|------------------------------------------|-------------------------------------------------------|
// | 'server-busy'         | 503 ServerBusy                                   | RestError statusCode 503, code undefined | ResponderError STATE.UNAVAILABLE, retryable, cause    |
// | 'internal-error'      | 500 InternalError                                | RestError statusCode 500                 | same                                                  |
// | 'operation-timed-out' | 500 OperationTimedOut (server-side timeout)      | RestError statusCode 500                 | same                                                  |
// | 'conflict'            | 409 EntityAlreadyExists (insert of an existing)  | RestError statusCode 409                 | put: `{ ok: false }`; getMany/scan: STATE.UNAVAILABLE |
// | 'precondition-failed' | 412 UpdateConditionNotSatisfied (stale ETag)     | RestError statusCode 412                 | put: `{ ok: false }`; getMany/scan: STATE.UNAVAILABLE |
// | 'connection-reset'    | none: the connection drops                       | RestError code 'ECONNRESET', no status   | STATE.UNAVAILABLE, retryable, cause                   |
// | 'timeout'             | none: the caller's abort signal fires            | AbortError (name 'AbortError')           | STATE.UNAVAILABLE, retryable, cause                   |
//
// data-tables' RestError: `message` is the raw response body (`{"odata.error":{...}}`), `code` is undefined, and
// `details` carries `errorCode` (the x-ms-error-code header) and `odataError` (the parsed body). Error codes: "Table
// Storage error codes" (learn.microsoft.com/rest/api/storageservices/table-service-error-codes) and "Common REST API
// error codes" (.../common-rest-api-error-codes: ServerBusy 503, InternalError 500, OperationTimedOut 500).
//
// The SDK's retry policy (TABLE_RETRY_OPTIONS in the adapter: 3 retries, 200 ms up to 2 s) retries 500, 503 and
// ECONNRESET before any of this reaches the adapter: an injected fault stands for what is left after those retries.
// Every adapter call carries an abort signal (its deadline, callTimeoutMs): 'timeout' is that signal firing.
//
// putMany: the adapter sends a batch's writes as entity-group transactions; a fault injected here fails the matching
// write alone (as put would), and the other writes of the call pass to the inner store (its own putMany).
import { RestError } from '@azure/data-tables';
import { ResponderError } from '../core/errors';
import {
    putAll,
    type PutResult,
    type ReadOptions,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    type WriteResult,
} from '../core/state/store';

export type StateStoreOperation = 'getMany' | 'put' | 'scan';

export type TableFaultKind =
    | 'server-busy'
    | 'internal-error'
    | 'operation-timed-out'
    | 'conflict'
    | 'precondition-failed'
    | 'connection-reset'
    | 'timeout';

export interface StateStoreFault {
    kind: TableFaultKind;
    /** Operations the fault applies to (default: all). */
    ops?: readonly StateStoreOperation[];
    /**
     * Which calls: matched against `partition/row` of a key (getMany: any key of the batch; put: its key) or the row
     * prefix of a scan. A string matches as a substring. Default: every call.
     */
    key?: RegExp | string;
    /** How many matching calls fail (default 1). */
    times?: number;
    /**
     * put only: the write reaches the inner store before the failure is reported, as when Table Storage committed the
     * entity and the answer was lost (connection reset, timeout, a 5xx from a front end after commit).
     */
    applied?: boolean;
}

/** One injected failure, as it happened. */
export interface InjectedStateFault {
    readonly op: StateStoreOperation;
    readonly kind: TableFaultKind;
    /** `partition/row` or the scan prefix. */
    readonly target: string;
    readonly applied: boolean;
}

const TABLE_ANSWERS: Partial<Record<TableFaultKind, { status: number; code: string; text: string }>> = {
    'server-busy': { status: 503, code: 'ServerBusy', text: 'The server is currently unable to receive requests.' },
    'internal-error': { status: 500, code: 'InternalError', text: 'The server encountered an internal error.' },
    'operation-timed-out': {
        status: 500,
        code: 'OperationTimedOut',
        text: 'The operation could not be completed within the permitted time.',
    },
    conflict: { status: 409, code: 'EntityAlreadyExists', text: 'The specified entity already exists.' },
    'precondition-failed': {
        status: 412,
        code: 'UpdateConditionNotSatisfied',
        text: 'The update condition specified in the request was not satisfied.',
    },
};

/** The error @azure/data-tables throws for a failure class, shaped as measured (see the table above). */
export function tableSdkError(kind: TableFaultKind): Error {
    if (kind === 'connection-reset') return new RestError('read ECONNRESET', { code: 'ECONNRESET' });
    if (kind === 'timeout') {
        const e = new Error('The operation was aborted. Rejecting from abort signal callback while making request.');
        e.name = 'AbortError';
        return e;
    }
    const answer = TABLE_ANSWERS[kind];
    if (answer === undefined) throw new Error(`faultyStateStore: unknown fault kind ${String(kind)}`);
    const odataError = {
        code: answer.code,
        message: { lang: 'en-US', value: `${answer.text}\nRequestId:00000000-0000-0000-0000-000000000000` },
    };
    const e = new RestError(JSON.stringify({ 'odata.error': odataError }), { statusCode: answer.status });
    e.details = { errorCode: answer.code, odataError };
    return e;
}

/** As TableStateStore's `unavailable`: the port's error for an infrastructure failure. */
function unavailable(what: string, err: Error): ResponderError {
    return new ResponderError('STATE.UNAVAILABLE', `state store ${what} failed: ${err.message}`, true, { cause: err });
}

function matches(pattern: RegExp | string | undefined, target: string): boolean {
    if (pattern === undefined) return true;
    return typeof pattern === 'string' ? target.includes(pattern) : pattern.test(target);
}

/** A StateStore that fails on demand, as Table Storage does, and otherwise passes every call to `inner`. */
export class FaultyStateStore implements StateStore {
    private readonly faults: { fault: StateStoreFault; remaining: number }[] = [];
    /** Every failure injected so far, in order. */
    readonly injected: InjectedStateFault[] = [];
    readonly sweep?: (eventTimeMs: number) => number;

    constructor(readonly inner: StateStore) {
        if (inner.sweep !== undefined) this.sweep = (t) => inner.sweep?.(t) ?? 0;
    }

    inject(fault: StateStoreFault): void {
        const times = fault.times ?? 1;
        if (!Number.isInteger(times) || times < 1)
            throw new Error(`faultyStateStore: times must be >= 1, got ${times}`);
        if (fault.applied === true && fault.ops?.some((o) => o !== 'put') === true) {
            throw new Error('faultyStateStore: applied only makes sense for put');
        }
        this.faults.push({ fault: { ...fault }, remaining: times });
    }

    pendingFaults(): number {
        return this.faults.reduce((n, f) => n + f.remaining, 0);
    }

    clearFaults(): void {
        this.faults.length = 0;
    }

    private take(
        op: StateStoreOperation,
        targets: readonly string[],
    ): { fault: StateStoreFault; target: string } | undefined {
        for (const pending of this.faults) {
            if (pending.remaining <= 0 || (pending.fault.ops !== undefined && !pending.fault.ops.includes(op)))
                continue;
            const target = targets.find((t) => matches(pending.fault.key, t));
            if (target === undefined) continue;
            pending.remaining -= 1;
            if (pending.remaining === 0) this.faults.splice(this.faults.indexOf(pending), 1);
            return { fault: pending.fault, target };
        }
        return undefined;
    }

    async getMany(keys: readonly StateKey[], options?: ReadOptions): Promise<readonly (StoredState | undefined)[]> {
        const hit = this.take(
            'getMany',
            keys.map((k) => `${k.partition}/${k.row}`),
        );
        if (hit === undefined) return this.inner.getMany(keys, options);
        this.injected.push({ op: 'getMany', kind: hit.fault.kind, target: hit.target, applied: false });
        throw unavailable(`reading ${hit.target}`, tableSdkError(hit.fault.kind));
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        const target = `${key.partition}/${key.row}`;
        const hit = this.take('put', [target]);
        if (hit === undefined) return this.inner.put(key, value, etag, expiresMs);
        const { kind } = hit.fault;
        let applied = false;
        if (hit.fault.applied === true) {
            applied = (await this.inner.put(key, value, etag, expiresMs)).ok;
        }
        this.injected.push({ op: 'put', kind, target, applied });
        // TableStateStore: "409: someone created the key first; 412: someone changed it since we read it".
        if (kind === 'conflict' || kind === 'precondition-failed') return { ok: false };
        throw unavailable(`writing ${target}`, tableSdkError(kind));
    }

    /**
     * Each write matched by a pending `put` fault fails as {@link put} would (a conflict, or the error thrown once the
     * other writes are done, as when one transaction of the adapter fails); the others go to the inner store at once.
     */
    async putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        const out = new Array<WriteResult>(writes.length);
        const clean: number[] = [];
        let thrown: ResponderError | undefined;
        for (let i = 0; i < writes.length; i++) {
            const w = writes[i] as StateWrite;
            const target = `${w.key.partition}/${w.key.row}`;
            const hit = this.take('put', [target]);
            if (hit === undefined) {
                clean.push(i);
                continue;
            }
            const { kind } = hit.fault;
            let applied = false;
            if (hit.fault.applied === true) applied = (await this.inner.put(w.key, w.value, w.etag, w.expiresMs)).ok;
            this.injected.push({ op: 'put', kind, target, applied });
            if (kind === 'conflict' || kind === 'precondition-failed') out[i] = { ok: false };
            else thrown ??= unavailable(`writing ${target}`, tableSdkError(kind));
        }
        const results = await putAll(
            this.inner,
            clean.map((i) => writes[i] as StateWrite),
        );
        clean.forEach((i, j) => {
            out[i] = results[j] as WriteResult;
        });
        if (thrown !== undefined) throw thrown;
        return out;
    }

    async scan(rowPrefix: string, limit: number): Promise<{ readonly key: StateKey; readonly value: unknown }[]> {
        const hit = this.take('scan', [rowPrefix]);
        if (hit === undefined) return this.inner.scan(rowPrefix, limit);
        this.injected.push({ op: 'scan', kind: hit.fault.kind, target: rowPrefix, applied: false });
        throw unavailable(`scanning ${rowPrefix}*`, tableSdkError(hit.fault.kind));
    }
}
