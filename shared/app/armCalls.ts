import { ResponderError } from '../core/errors';
import type { Clock } from '../core/ports';

/** The HTTP status of an ARM (or storage) SDK error, when it has one. */
export function statusOf(err: unknown): number | undefined {
    if (err === null || typeof err !== 'object') return undefined;
    const s = (err as { statusCode?: unknown }).statusCode;
    return typeof s === 'number' ? s : undefined;
}

/** The status of the error or of its cause (our ResponderError wraps the SDK error). */
export function statusOfErrorOrCause(err: unknown): number | undefined {
    return (
        statusOf(err) ??
        (err !== null && typeof err === 'object' ? statusOf((err as { cause?: unknown }).cause) : undefined)
    );
}

/** Retry-After of a throttled response, in ms (seconds or an HTTP date). */
export function retryAfterMs(err: unknown, now: number): number | undefined {
    if (err === null || typeof err !== 'object') return undefined;
    const headers = (err as { response?: { headers?: { get?: (name: string) => string | undefined } } }).response
        ?.headers;
    const value = headers?.get?.('retry-after');
    if (value === undefined) return undefined;
    const seconds = Number(value);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(value);
    return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** 429, 408, 5xx, our own time limit and connection failures: worth another attempt. */
export function isTransient(err: unknown): boolean {
    const status = statusOf(err);
    if (status !== undefined) return status === 429 || status === 408 || status >= 500;
    if (err === null || typeof err !== 'object') return false;
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (name === 'AbortError' || name === 'TimeoutError') return true; // our per-call time limit
    return ['ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED', 'ESOCKETTIMEDOUT', 'REQUEST_SEND_ERROR', 'ABORT_ERR'].includes(
        String(code),
    );
}

/** One line for people and the decision log: status, code and message, at most 500 characters. */
export function describeError(err: unknown): string {
    const status = statusOf(err);
    const code = err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
    const message = err instanceof Error ? err.message : String(err);
    return `${status === undefined ? '' : `HTTP ${status} `}${typeof code === 'string' ? `${code}: ` : ''}${message}`.slice(
        0,
        500,
    );
}

/**
 * Runs an ARM call, retrying 429 (honouring Retry-After) and transient failures with backoff while the budget lasts;
 * then throws `ARM.UNAVAILABLE` with the last error as cause. Other errors are thrown as they are.
 */
export async function withRetry<T>(clock: Clock, budgetMs: number, what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = clock.now() + budgetMs;
    for (let attempt = 0; ; attempt++) {
        try {
            return await fn();
        } catch (err) {
            if (!isTransient(err)) throw err;
            const wait = retryAfterMs(err, clock.now()) ?? Math.min(10_000, 250 * 2 ** attempt);
            if (clock.now() + wait > deadline) {
                throw new ResponderError(
                    'ARM.UNAVAILABLE',
                    `${what}: gave up retrying after ${attempt + 1} attempt(s): ${describeError(err)}`,
                    true,
                    { cause: err },
                );
            }
            await clock.sleep(wait);
        }
    }
}
