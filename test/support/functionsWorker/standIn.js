// A stand-in for the Azure Functions Node.js worker's registration API, preloaded with `node -r`.
//
// The worker does not ship `@azure/functions-core` as a package: it intercepts `require` and hands the module to the
// app (Azure/azure-functions-nodejs-worker, src/setupCoreModule.ts: a Proxy on Module.prototype.require that answers
// '@azure/functions-core'). `@azure/functions` looks the module up lazily (src/utils/tryGetCoreApiLazy.ts) and, when
// it is there, calls `setProgrammingModel` once and `registerFunction(metadata, callback)` for every `app.*` call
// (src/app.ts, src/converters/toCoreFunctionMetadata.ts). This stand-in answers the same way and records what the real
// library registers, so a test sees the metadata the host would index. Only Node built-ins are used here: the app
// under test must resolve everything else from its own node_modules.
'use strict';
const Module = require('node:module');

const state = { registrations: [], programmingModel: undefined, events: [] };
globalThis.__kvrFunctionsWorker = state;

class Disposable {
    constructor(callOnDispose) {
        this._callOnDispose = callOnDispose;
    }
    dispose() {
        this._callOnDispose?.();
    }
}

const coreApi = {
    version: '3.12.0-standin',
    hostVersion: '4.1040.0-standin',
    registerFunction(metadata, callback) {
        state.registrations.push({ metadata, callback });
        return new Disposable(() => undefined);
    },
    setProgrammingModel(model) {
        state.programmingModel = model;
    },
    getProgrammingModel() {
        return state.programmingModel;
    },
    registerHook() {
        return new Disposable(() => undefined);
    },
    log() {},
    Disposable,
};

Module.prototype.require = new Proxy(Module.prototype.require, {
    apply(target, thisArg, args) {
        if (args[0] === '@azure/functions-core') return coreApi;
        return Reflect.apply(target, thisArg, args);
    },
});

// Load order, for the telemetry start-up test: the first load of each watched package, and the call of
// useAzureMonitor (the loaded module's export is wrapped to record when it runs).
const WATCHED = (process.env.KVR_STANDIN_WATCH ?? '').split(',').filter((s) => s.length > 0);
if (WATCHED.length > 0) {
    const seen = new Set();
    const load = Module._load;
    Module._load = function (request, parent, isMain) {
        const exports = load.call(this, request, parent, isMain);
        if (WATCHED.includes(request) && !seen.has(request)) {
            seen.add(request);
            state.events.push(`load ${request}`);
            if (request === '@azure/monitor-opentelemetry' && typeof exports.useAzureMonitor === 'function') {
                const real = exports.useAzureMonitor;
                const wrapped = function (...a) {
                    state.events.push('call useAzureMonitor');
                    return real.apply(this, a);
                };
                return new Proxy(exports, {
                    get: (t, p, r) => (p === 'useAzureMonitor' ? wrapped : Reflect.get(t, p, r)),
                });
            }
        }
        return exports;
    };
}
