import type { InvocationContext, Timer } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import type { Alerting } from '../alerting';

/** Every minute: retries due notifications and escalates unacknowledged incidents to the next on-call tier. */
export async function handleAlertingTimer(
    _timer: Timer,
    context: InvocationContext,
    deps: { readonly alerting: Alerting },
): Promise<void> {
    const r = await deps.alerting.tick();
    if (r.handled > 0) new InvocationLogger(context).info('kvr.alerting-tick', { ...r });
}
