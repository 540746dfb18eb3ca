// A throw-away certificate authority and a server certificate it signed, for local HTTPS fakes.
//
// Clients trust the CA per client (`tlsOptions: { ca }` for Azure SDK clients, `ca` for node:https), never through
// NODE_TLS_REJECT_UNAUTHORIZED. The pair is generated once per process and shared by every fake in it.
import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';

export interface TestCa {
    /** The CA certificate (PEM): what a client trusts. */
    caPem: string;
    /** The server certificate (PEM) for DNS:localhost and IP:127.0.0.1, signed by the CA. */
    certPem: string;
    /** The server certificate's private key (PKCS#8 PEM). */
    keyPem: string;
}

const DAY_MS = 24 * 3600 * 1000;
// On globalThis rather than in a module variable: jest gives each test file its own module registry, and the
// point is to pay for key generation once per worker process.
const CACHE_KEY = Symbol.for('kv-responder.test.testCa');

async function createTestCa(): Promise<TestCa> {
    // A day of slack on either side of now, so that a clock step during a run cannot invalidate the chain.
    const notBeforeDate = new Date(Date.now() - DAY_MS);
    const notAfterDate = new Date(Date.now() + 7 * DAY_MS);
    const ca = await generate([{ name: 'commonName', value: 'kv-responder throw-away test CA' }], {
        keyType: 'ec',
        curve: 'P-256',
        algorithm: 'sha256',
        notBeforeDate,
        notAfterDate,
        extensions: [
            { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
            { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        ],
    });
    const leaf = await generate([{ name: 'commonName', value: 'localhost' }], {
        keyType: 'ec',
        curve: 'P-256',
        algorithm: 'sha256',
        notBeforeDate,
        notAfterDate,
        ca: { key: ca.private, cert: ca.cert },
        extensions: [
            { name: 'basicConstraints', cA: false, critical: true },
            { name: 'keyUsage', digitalSignature: true, critical: true },
            { name: 'extKeyUsage', serverAuth: true },
            {
                name: 'subjectAltName',
                altNames: [
                    { type: 2, value: 'localhost' },
                    { type: 7, ip: '127.0.0.1' },
                ],
            },
        ],
    });

    // Fail here, with a clear message, rather than later as an opaque TLS handshake error.
    const caCert = new X509Certificate(ca.cert);
    const leafCert = new X509Certificate(leaf.cert);
    if (!leafCert.checkIssued(caCert) || !leafCert.verify(caCert.publicKey)) {
        throw new Error('testCa: the server certificate is not signed by the test CA');
    }
    if (leafCert.checkHost('localhost') === undefined || leafCert.checkIP('127.0.0.1') === undefined) {
        throw new Error('testCa: the server certificate does not name localhost and 127.0.0.1');
    }
    return { caPem: ca.cert, certPem: leaf.cert, keyPem: leaf.private };
}

/** The process-wide test CA and server certificate, generated on first use. */
export function getTestCa(): Promise<TestCa> {
    const store = globalThis as unknown as Record<symbol, Promise<TestCa> | undefined>;
    let cached = store[CACHE_KEY];
    if (cached === undefined) {
        cached = createTestCa();
        // A failed generation is not cached: the next caller tries again.
        cached.catch(() => {
            if (store[CACHE_KEY] === cached) store[CACHE_KEY] = undefined;
        });
        store[CACHE_KEY] = cached;
    }
    return cached;
}
