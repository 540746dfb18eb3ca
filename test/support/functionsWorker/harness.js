// Loads a Function app's `main` the way the worker does (after standIn.js is preloaded), then prints what the app
// registered as one JSON line. With KVR_HARNESS_INVOKE (a JSON {function, data, triggerMetadata}), it also runs one
// invocation through the library's own programming model (getInvocationModel → getArguments → invokeFunction), the
// path the worker takes for an invocation request, and prints the result and the user logs.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

async function main() {
    const appRoot = process.argv[2];
    const pkg = JSON.parse(readFileSync(join(appRoot, 'package.json'), 'utf8'));
    const state = globalThis.__kvrFunctionsWorker;
    const out = { loadError: undefined, registrations: [], events: state.events, invocation: undefined };
    try {
        require(join(appRoot, pkg.main));
    } catch (err) {
        out.loadError = String(err && err.stack ? err.stack : err);
    }
    out.programmingModel = state.programmingModel ? state.programmingModel.name : undefined;
    out.registrations = state.registrations.map((r) => r.metadata);
    const spec = process.env.KVR_HARNESS_INVOKE;
    if (spec !== undefined && out.loadError === undefined) {
        const { function: name, bodies, triggerMetadata } = JSON.parse(spec);
        const reg = state.registrations.find((r) => r.metadata.name === name);
        const trigger = Object.values(reg.metadata.bindings).find((b) => b.direction === 'in');
        // What the host sends for a batch (cardinality many) of Event Hubs bodies, by the binding's dataType. Without
        // one the host deserializes every body as JSON itself, and a body that is not JSON fails the binding of the
        // whole batch before the function runs (Azure/azure-functions-eventhubs-extension#118,
        // Azure/azure-functions-nodejs-library#340); with `string` each body arrives as it was sent.
        let data;
        if (trigger.dataType === 'string') data = { collectionString: { string: bodies } };
        else {
            try {
                data = { collectionString: { string: bodies.map((b) => JSON.stringify(JSON.parse(b))) } };
            } catch (err) {
                out.invocation = { bindingError: `the host cannot bind the batch: ${String(err)}` };
            }
        }
        if (data === undefined) {
            process.stdout.write(`\nKVR-HARNESS ${JSON.stringify(out)}\n`);
            process.exit(0);
        }
        const logs = [];
        const coreCtx = {
            invocationId: 'b1f6c0de-0000-4000-8000-000000000001',
            metadata: reg.metadata,
            request: { inputData: [{ name: trigger.name, data }], triggerMetadata: triggerMetadata ?? {} },
            state: undefined,
            log: (level, category, message) => logs.push({ level, category, message }),
        };
        const model = state.programmingModel.getInvocationModel(coreCtx);
        const { context, inputs } = await model.getArguments();
        try {
            const result = await model.invokeFunction(context, inputs, reg.callback);
            out.invocation = { inputs, result, logs };
        } catch (err) {
            out.invocation = { inputs, error: String(err), logs };
        }
    }
    process.stdout.write(`\nKVR-HARNESS ${JSON.stringify(out)}\n`);
    // Timers, SDK clients and telemetry may keep the loop alive; the report is out.
    process.exit(0);
}

main().catch((err) => {
    process.stdout.write(`\nKVR-HARNESS ${JSON.stringify({ loadError: String(err && err.stack) })}\n`);
    process.exit(1);
});
