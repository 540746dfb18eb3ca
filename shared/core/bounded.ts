/**
 * `fn` on each item, at most `limit` at once; the results in the items' order. After a failure no item is started,
 * the calls in flight are waited for, and the first failure is thrown: nothing runs on after the caller has failed.
 */
export async function eachBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
    const out = new Array<R>(items.length);
    let next = 0;
    let failure: { readonly err: unknown } | undefined;
    const worker = async (): Promise<void> => {
        while (next < items.length && failure === undefined) {
            const i = next++;
            try {
                out[i] = await fn(items[i] as T);
            } catch (err) {
                failure ??= { err };
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
    if (failure !== undefined) throw failure.err;
    return out;
}
