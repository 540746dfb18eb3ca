// What the Functions queue trigger hands a function: the host receives the message, decodes its base64 text and
// parses the JSON (host.json sets `messageEncoding: base64`), then deletes the message once the function
// returned. Tests drain the reconcile queue this way between steps.
import type { QueueClient } from '@azure/storage-queue';

/** Receives every visible message (up to 32), deletes each, and returns the decoded bodies in order. */
export async function receiveAsQueueTrigger(queue: QueueClient): Promise<unknown[]> {
    const r = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
    const out: unknown[] = [];
    for (const m of r.receivedMessageItems) {
        out.push(JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')));
        await queue.deleteMessage(m.messageId, m.popReceipt);
    }
    return out;
}
