import { listCaptures, readCapture } from '../adapters/captureReader';
import type { ResponderConfig } from '../config/responderConfig';
import type { StateStore } from '../core/state/store';
import type { Simulation } from '../simulation/simulation';
import { createResponder, type PipelineOptions, type PipelineSinks, type Responder } from './createPipeline';
import type { PipelineStats } from './pipeline';

export interface ReplayProgress {
    readonly file: string;
    readonly fileIndex: number;
    readonly fileCount: number;
    readonly bytesDone: number;
    readonly bytesTotal: number;
    readonly stats: PipelineStats;
}

export interface ReplayOptions {
    readonly inputs: readonly string[];
    readonly config: ResponderConfig;
    readonly sinks: PipelineSinks;
    /** Durable rule state (e.g. to seed baselines into Table Storage); in memory when absent. */
    readonly store?: StateStore;
    /** Simulated vaults (`--vaults`): remediations run against them through the real ARM client. */
    readonly simulation?: Simulation;
    readonly onProgress?: (progress: ReplayProgress) => void;
    /** Incidents and notifications (`--outbox`); decisions only reach the sinks without it. */
    readonly alerting?: PipelineOptions['alerting'];
    /** Feeds an existing responder (`kvr serve --replay`) instead of building one. */
    readonly responder?: Responder;
}

export interface ReplayResult {
    readonly files: number;
    readonly ignoredFiles: readonly string[];
    readonly stats: PipelineStats;
    readonly responder: Responder;
}

/**
 * Pushes captured logs through exactly the pipeline the Function uses. All inputs are resolved (and proven
 * readable) before the first record is processed.
 */
export async function replay(options: ReplayOptions): Promise<ReplayResult> {
    const listing = await listCaptures(options.inputs);
    const responder =
        options.responder ??
        createResponder(options.config, options.sinks, {
            acceptBareRecords: true,
            ...(options.alerting === undefined ? {} : { alerting: options.alerting }),
            ...(options.store === undefined ? {} : { store: options.store }),
            ...(options.simulation === undefined
                ? {}
                : {
                      admin: options.simulation.admin,
                      beforeDetection: (events) => options.simulation?.applyRecorded(events),
                  }),
        });
    const pipeline = responder.pipeline;
    const bytesTotal = listing.files.reduce((n, f) => n + f.size, 0);
    let bytesBefore = 0;
    for (const [index, file] of listing.files.entries()) {
        // With simulated vaults, one body per batch keeps recorded changes and remediations in their real order.
        for await (const chunk of readCapture(file, options.simulation === undefined ? undefined : 1)) {
            await pipeline.processBatch(chunk.items);
            options.onProgress?.({
                file: file.path,
                fileIndex: index,
                fileCount: listing.files.length,
                bytesDone: bytesBefore + chunk.bytesRead,
                bytesTotal,
                stats: pipeline.stats,
            });
        }
        bytesBefore += file.size;
    }
    if (options.simulation !== undefined) await options.sinks.decisions.write(options.simulation.states());
    return { files: listing.files.length, ignoredFiles: listing.ignored, stats: pipeline.stats, responder };
}
