import type { Outcome } from './types';

/** `resultSignature` values seen in real records (HTTP reason phrases), mapped to their status codes. */
const SIGNATURES: Readonly<Record<string, number>> = {
    ok: 200,
    created: 201,
    accepted: 202,
    nocontent: 204,
    badrequest: 400,
    unauthorized: 401,
    forbidden: 403,
    notfound: 404,
    methodnotallowed: 405,
    conflict: 409,
    gone: 410,
    preconditionfailed: 412,
    toomanyrequests: 429,
    internalservererror: 500,
    badgateway: 502,
    serviceunavailable: 503,
    gatewaytimeout: 504,
};

/** The HTTP status of a record: `properties.httpStatusCode` when numeric, else parsed from `resultSignature`. */
export function httpStatusOf(httpStatusCode: unknown, resultSignature: string | undefined): number | undefined {
    if (typeof httpStatusCode === 'number' && Number.isInteger(httpStatusCode)) return httpStatusCode;
    if (typeof httpStatusCode === 'string' && /^\d{3}$/.test(httpStatusCode)) return Number(httpStatusCode);
    if (resultSignature === undefined) return undefined;
    if (/^\d{3}$/.test(resultSignature)) return Number(resultSignature);
    return SIGNATURES[resultSignature.replace(/[\s_-]/g, '').toLowerCase()];
}

export function outcomeOf(status: number | undefined): Outcome {
    if (status === undefined) return 'unknown';
    if (status >= 200 && status < 300) return 'success';
    switch (status) {
        case 401:
            return 'unauthorized';
        case 403:
            return 'forbidden';
        case 404:
            return 'not-found';
        case 409:
            return 'conflict';
        case 429:
            return 'throttled';
    }
    if (status >= 500) return 'server-error';
    if (status >= 400) return 'client-error';
    return 'unknown';
}
