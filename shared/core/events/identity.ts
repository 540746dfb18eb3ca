import { hash64 } from '../hash';
import type { AuditEvent } from './types';

/** The actor of an event: object id, else app id, else managed-identity resource id. */
export function principalOf(event: AuditEvent): string | undefined {
    return event.caller.objectId ?? event.caller.appId ?? event.caller.managedIdentityResourceId;
}

/** A stable identity of the record behind an event (correlation id, operation, time, object, actor): redelivered copies share it. */
export function recordIdOf(e: AuditEvent): string {
    return hash64(
        `${e.correlationId ?? ''}|${e.operation}|${e.time}|${e.target?.uri ?? e.vault.resourceId}|${principalOf(e) ?? ''}`,
    );
}
