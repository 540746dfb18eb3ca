/** Error codes are `AREA.UPPER_SNAKE`; callers branch on `code`, never on message text. */
export type ErrorCode =
    | 'CONFIG.INVALID'
    | 'INPUT.UNREADABLE'
    | 'USAGE.INVALID'
    | 'SINK.WRITE_FAILED'
    | 'STATE.CONFLICT'
    | 'STATE.UNAVAILABLE'
    | 'STATE.TOO_LARGE'
    | 'ARM.UNAVAILABLE'
    | 'UNDO.ALREADY_DONE';

export class ResponderError extends Error {
    constructor(
        readonly code: ErrorCode,
        message: string,
        readonly retryable = false,
        options?: { cause?: unknown },
    ) {
        super(message, options);
        this.name = 'ResponderError';
    }
}

/** Invalid configuration: `problems` lists every issue found, not only the first. */
export class ConfigError extends ResponderError {
    constructor(
        readonly source: string,
        readonly problems: readonly string[],
    ) {
        super('CONFIG.INVALID', `invalid config ${source}: ${problems.join('; ')}`);
        this.name = 'ConfigError';
    }
}

export function ensureError(err: unknown): Error {
    return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
}
