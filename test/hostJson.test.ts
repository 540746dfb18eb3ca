/**
 * host.json settings of the Event Hubs trigger (docs/deploy-packaging.md, "host.json"). JSON has no comments, so the
 * reasons live here and in the docs page.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './support/cli';

interface EventHubsHostSettings {
    maxEventBatchSize?: number;
    minEventBatchSize?: number;
    maxWaitTime?: string;
    batchCheckpointFrequency?: number;
    prefetchCount?: number;
}

const host = JSON.parse(readFileSync(join(REPO, 'host.json'), 'utf8')) as {
    extensions: { eventHubs: EventHubsHostSettings };
};
const eh = host.extensions.eventHubs;

describe('host.json, Event Hubs trigger', () => {
    it('sets maxWaitTime only together with a minEventBatchSize above 1, where it has an effect', () => {
        // host.json reference (Event Hubs extension 5.x): the trigger waits up to maxWaitTime to fill a batch only
        // when minEventBatchSize > 1; otherwise the setting is ignored (deployment-contracts.md, "Azure Functions").
        // We dispatch at once (minEventBatchSize 1, no maxWaitTime): every diagnostic-settings body already carries
        // many records, and a responder should not wait for a batch to fill.
        if (eh.maxWaitTime !== undefined) expect(eh.minEventBatchSize ?? 1).toBeGreaterThan(1);
        expect(eh.minEventBatchSize ?? 1).toBe(1);
        expect(eh.maxWaitTime).toBeUndefined();
    });

    it('keeps the batch bounds consistent', () => {
        const max = eh.maxEventBatchSize ?? 100;
        expect(eh.minEventBatchSize ?? 1).toBeLessThanOrEqual(max);
        // Prefetch at least one full batch, so that a batch is not starved by the prefetch buffer.
        expect(eh.prefetchCount ?? 300).toBeGreaterThanOrEqual(max);
        // Checkpoint after every batch: a restart or a lost lease replays at most one batch.
        expect(eh.batchCheckpointFrequency ?? 1).toBe(1);
    });
});
