/**
 * @runctl/core: the contracts every runctl package builds on, and the pieces
 * that need no cloud: configuration, errors, code bundles, the file artifact
 * store and the provider registry. It imports no other runctl package.
 */
export * from "./artifacts.ts";
export * from "./bootstrap.ts";
export * from "./bundle/mod.ts";
export * from "./config/mod.ts";
export * from "./control.ts";
export * from "./errors.ts";
export * from "./host-spec.ts";
export * from "./json-depth.ts";
export * from "./post-run-sync.ts";
export * from "./provider.ts";
export * from "./registry.ts";
export * from "./run.ts";
export * from "./run-id.ts";
export * from "./run-spec.ts";
export * from "./run-sync.ts";
export * from "./tags.ts";
export * from "./validation.ts";
