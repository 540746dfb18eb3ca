// `--outbox <dir>`: notifications written as files instead of sent, each exactly as it would go on the wire.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChannelName, DeliveryChannel, OutgoingNotification } from '../core/alerts/types';

/** What an email file holds: the Graph request and its body, plus the readable parts for people. */
export interface OutboxEmailFile {
    readonly request: { readonly method: 'POST'; readonly path: string; readonly contentType: 'text/plain' };
    /** The base64 MIME message: the exact request body. */
    readonly body: string;
    readonly readable: {
        readonly from: string;
        readonly to: readonly string[];
        readonly subject: string;
        readonly text: string;
    };
}

/**
 * One file per notification: `<incident>.<notice>.json`, the Teams webhook body as posted, or the Graph `sendMail`
 * request of an email. Also lists what it wrote, for the CLI to print.
 */
export class OutboxDirectory {
    readonly written: { readonly path: string; readonly notification: OutgoingNotification }[] = [];
    private ready: Promise<unknown> | undefined;

    constructor(readonly dir: string) {}

    channel(name: ChannelName): DeliveryChannel {
        return { name, send: (n) => this.write(n) };
    }

    private async write(n: OutgoingNotification): Promise<void> {
        this.ready ??= mkdir(this.dir, { recursive: true });
        await this.ready;
        const path = join(this.dir, `${n.id}.json`);
        let content: unknown;
        if (n.channel === 'teams') content = n.teams;
        else {
            const e = n.email;
            content = {
                request: {
                    method: 'POST',
                    path: `/v1.0/users/${encodeURIComponent(e.from)}/sendMail`,
                    contentType: 'text/plain',
                },
                body: e.mimeBase64,
                readable: { from: e.from, to: e.to, subject: e.subject, text: e.text },
            } satisfies OutboxEmailFile;
        }
        await writeFile(path, `${JSON.stringify(content, null, 2)}\n`);
        this.written.push({ path, notification: n });
    }
}
