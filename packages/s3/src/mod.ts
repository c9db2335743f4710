/**
 * `@runctl/s3`: S3 (and R2, MinIO, B2) for runctl. The `s3://` ArtifactStore, the sync engine
 * behind `runctl s3 sync`, and what the other `runctl s3` commands do.
 */
export { S3ArtifactStore, s3ArtifactStoreFactory } from "./artifact-store.ts";
export {
  applyS3Cleanup,
  CHECKPOINT_EXTENSIONS,
  planS3Cleanup,
  type S3Checkpoint,
  type S3CleanupPlan,
} from "./checkpoint-cleanup.ts";
export { createS3Client, DEFAULT_REGION, type S3Settings, s3SettingsFromConfig } from "./client-settings.ts";
export { digestFile, type FileDigest, plainMd5Etag } from "./file-digest.ts";
export { type LocalFile, pathFilter, walkLocal } from "./local-tree.ts";
export {
  abortStaleUploads,
  type HeadInfo,
  headObject,
  listAll,
  type RemoteObject,
  SHA256_METADATA,
} from "./object-transfer.ts";
export {
  ExpiresInSeconds,
  MAX_PRESIGN_SECONDS,
  presignGetUrl,
  presignPostPolicy,
  presignPutUrl,
} from "./presign.ts";
export { type ProgressSink, silentProgress, TerminalProgress } from "./progress.ts";
export { describeCredentialSource, type S3ErrorContext, s3Error } from "./s3-errors.ts";
export {
  downloadPath,
  type ListedPath,
  listPath,
  planRemove,
  type RemoveResult,
  removeObjects,
  type TransferSettings,
  uploadPath,
} from "./s3-operations.ts";
export { directoryPrefix, formatS3Url, isS3Url, keyUnder, parseS3Url, type S3Location } from "./s3-url.ts";
export { type SyncOptions, type SyncSummary, syncDirectories, syncDown, syncUp } from "./sync.ts";
