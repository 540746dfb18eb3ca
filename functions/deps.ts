import { type AppDeps, composeApp } from '../shared/app/compositionRoot';

let built: AppDeps | undefined;

/** The app's dependencies, composed once per worker from the app settings (a bad setting fails the load). */
export function deps(): AppDeps {
    built ??= composeApp(process.env);
    return built;
}
