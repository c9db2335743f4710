/**
 * The S3 emulator, for tests and benchmarks of anything that talks to S3 (the artifact store,
 * `runctl s3`, remote runs): in this process with `startS3Emulator`, or as its own process
 * with `spawnS3Emulator` (the built `dist/s3-emulator/main.js`).
 */
export { DEFAULT_CREDENTIAL, EmulatorCredential } from "./s3-emulator/credentials.ts";
export { type S3Emulator, type S3EmulatorOptions, startS3Emulator } from "./s3-emulator/server.ts";
