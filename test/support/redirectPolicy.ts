// Sends a real Azure SDK client's requests to a local fake while the client keeps its real host names (and with them
// its token scopes and Key Vault challenge verification): the request URL is rewritten for the call and restored after.
import type { PipelinePolicy } from '@azure/core-rest-pipeline';

export function redirectTo(base: string): PipelinePolicy {
    const target = new URL(base);
    return {
        name: 'redirectToFake',
        async sendRequest(request, next) {
            const original = request.url;
            const u = new URL(original);
            u.protocol = target.protocol;
            u.host = target.host;
            request.url = u.toString();
            try {
                return await next(request);
            } finally {
                request.url = original;
            }
        },
    };
}
