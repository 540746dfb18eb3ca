// The first module of the Function app's bundle (scripts/build.mjs imports it before any function): starting
// telemetry here, before the functions and the composition root load the Azure SDKs, lets auto-instrumentation attach
// to them. ES modules evaluate in import order, so this runs before the next import of the entry point is evaluated.
import { startTelemetry } from './telemetry';

startTelemetry(process.env);
