import type { Decision } from '../core/decisions';
import type { DecisionSink, QuarantineItem, QuarantineSink } from '../core/ports';

/** Keeps quarantined items in memory (tests, the benchmark). */
export class MemoryQuarantineSink implements QuarantineSink {
    readonly items: QuarantineItem[] = [];
    put(items: readonly QuarantineItem[]): Promise<void> {
        this.items.push(...items);
        return Promise.resolve();
    }
}

/** Keeps decisions in memory (tests). */
export class MemoryDecisionSink implements DecisionSink {
    readonly decisions: Decision[] = [];
    write(decisions: readonly Decision[]): Promise<void> {
        this.decisions.push(...decisions);
        return Promise.resolve();
    }
}

/** Counts decisions and drops them (the benchmark measures the pipeline, not an output stream). */
export class CountingDecisionSink implements DecisionSink {
    count = 0;
    write(decisions: readonly Decision[]): Promise<void> {
        this.count += decisions.length;
        return Promise.resolve();
    }
}
