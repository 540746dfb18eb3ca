import { InvocationContext } from '@azure/functions';

export interface CapturedLog {
    readonly level: string;
    readonly entry: Record<string, unknown>;
}

/** An InvocationContext whose log lines are captured (parsed when they are JSON), as the host would receive them. */
export function makeContext(triggerMetadata?: Record<string, unknown>): {
    context: InvocationContext;
    logs: CapturedLog[];
} {
    const logs: CapturedLog[] = [];
    const context = new InvocationContext({
        invocationId: 'test-invocation',
        functionName: 'kvAuditIngest',
        logHandler: (level, ...args) => {
            const text = args.map(String).join(' ');
            let entry: Record<string, unknown>;
            try {
                entry = JSON.parse(text) as Record<string, unknown>;
            } catch {
                entry = { text };
            }
            logs.push({ level, entry });
        },
        ...(triggerMetadata === undefined ? {} : { triggerMetadata }),
    });
    return { context, logs };
}
