import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { handleAuditBatch } from '../../shared/app/handlers/handleAuditBatch';
import { HEARTBEAT_KEY, IngestHeartbeat, readHeartbeat } from '../../shared/app/heartbeat';
import type { AuditPipeline, BatchReport } from '../../shared/app/pipeline';
import type { Logger } from '../../shared/core/ports';
import type { StateStore } from '../../shared/core/state/store';
import { makeContext } from '../support/context';

const T0 = Date.parse('2026-12-04T10:00:00.000Z');

function capturingLogger(): Logger & { warnings: string[] } {
    const warnings: string[] = [];
    return { warnings, info: () => undefined, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
}

describe('the ingest heartbeat', () => {
    it('writes at most once per interval and keeps the newest time', async () => {
        const store = new MemoryStateStore();
        const puts = jest.spyOn(store, 'put');
        const hb = new IngestHeartbeat(store, capturingLogger(), 60_000);
        hb.beat(T0, 3);
        await hb.flush();
        hb.beat(T0 + 30_000, 1);
        await hb.flush();
        expect(puts).toHaveBeenCalledTimes(1);
        hb.beat(T0 + 61_000, 2);
        await hb.flush();
        expect(await readHeartbeat(store)).toEqual({ at: '2026-12-04T10:01:01.000Z', bodies: 2 });
        // Another worker with an older clock does not move it back.
        const other = new IngestHeartbeat(store, capturingLogger(), 60_000);
        other.beat(T0 + 10_000, 9);
        await other.flush();
        expect((await readHeartbeat(store))?.at).toBe('2026-12-04T10:01:01.000Z');
    });

    it('logs a failed write and never throws', async () => {
        const broken: StateStore = {
            getMany: () => Promise.reject(new Error('table unreachable')),
            put: () => Promise.reject(new Error('unused')),
            scan: () => Promise.resolve([]),
        };
        const log = capturingLogger();
        const hb = new IngestHeartbeat(broken, log);
        expect(() => hb.beat(T0, 1)).not.toThrow();
        await hb.flush();
        expect(log.warnings).toEqual(['kvr.heartbeat-failed']);
    });

    it('is beaten by the batch handler after a handled batch, not after a failed one', async () => {
        const empty: BatchReport = {
            events: [],
            decisions: [],
            quarantined: [],
            records: 0,
            skipped: 0,
            enqueueLagMs: [],
            reconcile: [],
        };
        const beats: number[] = [];
        const heartbeat = { beat: (_now: number, bodies: number) => beats.push(bodies) };
        const ok = { processBatch: () => Promise.resolve(empty) } as unknown as AuditPipeline;
        await handleAuditBatch(['{}', '{}'], makeContext().context, { pipeline: ok, heartbeat, now: () => T0 });
        expect(beats).toEqual([2]);
        const down = { processBatch: () => Promise.reject(new Error('sink down')) } as unknown as AuditPipeline;
        await expect(
            handleAuditBatch(['{}'], makeContext().context, { pipeline: down, heartbeat, now: () => T0 }),
        ).rejects.toThrow('sink down');
        expect(beats).toEqual([2]);
        expect(HEARTBEAT_KEY.partition).toBe('kvr-health');
    });
});
