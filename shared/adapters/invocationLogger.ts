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
