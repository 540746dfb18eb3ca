/**
 * What this instance last wrote of a few keys (an ETag, a value), so that the next update of one of them can try its
 * compare-and-set on that without reading first. Each entry is taken out when used: tried once, a stale one (another
 * writer since) fails its compare-and-set and the caller reads. Bounded: past `max` keys the oldest is dropped.
 */
export class LastWritten<V> {
    private readonly entries = new Map<string, V>();

    constructor(private readonly max: number) {}

    /** Keeps `value` as the newest entry of `key`, dropping the oldest key when full. */
    set(key: string, value: V): void {
        this.entries.delete(key);
        if (this.entries.size >= this.max) {
            const oldest = this.entries.keys().next();
            if (oldest.done !== true) this.entries.delete(oldest.value);
        }
        this.entries.set(key, value);
    }

    /** The entry of `key`, taken out; undefined when none is kept. */
    take(key: string): V | undefined {
        const v = this.entries.get(key);
        this.entries.delete(key);
        return v;
    }
}
