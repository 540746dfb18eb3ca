import type { AuditEvent } from '../events/types';

/** "alice@contoso.com (oid …) from 203.0.113.5": who did it, for one-line summaries. Not escaped: sinks escape. */
export function describeCaller(event: AuditEvent): string {
    const c = event.caller;
    const who =
        c.upn ??
        (c.managedIdentityResourceId === undefined
            ? undefined
            : `managed identity ${c.managedIdentityResourceId.split('/').pop() ?? ''}`) ??
        (c.appId === undefined ? undefined : `app ${c.appId}`) ??
        (c.objectId === undefined ? undefined : `principal ${c.objectId}`) ??
        c.trustedService ??
        'an anonymous caller';
    return c.ipAddress === undefined ? who : `${who} from ${c.ipAddress}`;
}

/** "secret db-password" or "vault kv-prod". */
export function describeTarget(event: AuditEvent): string {
    const t = event.target;
    if (t === undefined || t.kind === 'vault' || t.name === undefined) return `vault ${event.vault.name}`;
    return `${t.kind} ${t.name} in ${event.vault.name}`;
}
