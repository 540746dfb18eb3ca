// A raw HTTPS request to a local fake, for what an SDK would not send (no api-version, bad bodies, other tokens).
import { request } from 'node:https';

export interface RawResponse {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Record<string, unknown> & { error?: { code?: string; message?: string } };
}

/** Sends `body` (JSON) to `url`, trusting `caPem`; the response body parsed as JSON (`{}` when empty). */
export function rawHttps(
    url: URL,
    caPem: string,
    method: string,
    headers: Record<string, string>,
    body?: unknown,
): Promise<RawResponse> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
        const req = request(
            url,
            {
                method,
                ca: caPem,
                headers: { ...headers, ...(text === undefined ? {} : { 'content-type': 'application/json' }) },
            },
            (res) => {
                let data = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => (data += c));
                res.on('end', () =>
                    resolve({
                        status: res.statusCode ?? 0,
                        headers: res.headers,
                        body: data === '' ? {} : (JSON.parse(data) as RawResponse['body']),
                    }),
                );
            },
        );
        req.on('error', reject);
        req.end(text);
    });
}
