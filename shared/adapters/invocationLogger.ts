import type { InvocationContext } from '@azure/functions';
import type { Logger } from '../core/ports';

/** Structured logs through the Functions invocation context: one JSON object per line, never secrets. */
export class InvocationLogger implements Logger {
    constructor(private readonly context: InvocationContext) {}

    info(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.context.info(JSON.stringify({ msg: message, ...fields }));
    }

    warn(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.context.warn(JSON.stringify({ msg: message, ...fields }));
    }

    error(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.context.error(JSON.stringify({ msg: message, ...fields }));
    }
}

/** Structured logs as JSON lines on a stream (stderr): the CLI, and work outside any one invocation. */
export class StreamLogger implements Logger {
    constructor(private readonly out: { write(chunk: string): unknown }) {}

    private line(level: string, message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.out.write(`${JSON.stringify({ level, msg: message, ...fields })}\n`);
    }

    info(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.line('info', message, fields);
    }

    warn(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.line('warn', message, fields);
    }

    error(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.line('error', message, fields);
    }
}
