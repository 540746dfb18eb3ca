import type { Decision } from './decisions';

/** A rejected input kept whole, so that nothing is lost silently. */
export interface QuarantineItem {
    readonly reason: string;
    /** Where it came from (file and line, or partition and sequence number), when known. */
    readonly source: string | undefined;
    /** Truncated, secret-free excerpt (what logs and the decision log show). */
    readonly excerpt: string;
    /** The original item: a string, a Buffer, or a parsed value. */
    readonly raw: unknown;
}

/** Keeps rejected inputs (a local directory in replay and tests, Azure Blob Storage in production). */
export interface QuarantineSink {
    put(items: readonly QuarantineItem[]): Promise<void>;
}

/** Receives every decision (stdout or a file in replay; logs and, later, notifiers in production). */
export interface DecisionSink {
    write(decisions: readonly Decision[]): Promise<void>;
}

/** Structured logger (the Functions `InvocationContext`, or stderr in the CLI). */
export interface Logger {
    info(message: string, fields?: Readonly<Record<string, unknown>>): void;
    warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
    error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}
