/**
 * @runctl/control: runtime control of training runs (docs/control.md). The
 * implementations of core's ControlChannel contract (one channel per run): the
 * node-local file queue with runtimectl-compatible files and NATS JetStream;
 * the supervisor's bridge between them; and the
 * RuntimeController a training loop uses to apply commands on every rank.
 */
export { AckRecord } from "./ack.ts";
export type { Collective } from "./collective.ts";
export {
  type ApplyFn,
  type PollSchedule,
  type RegisterOptions,
  RuntimeController,
  type RuntimeControllerOptions,
  type ValidateFn,
} from "./controller.ts";
export { ControlState } from "./cursor.ts";
export { FileQueue } from "./file-queue.ts";
export { type HistoryItem, readHistory } from "./history.ts";
export { checkJsonText, jsonTextIssue, parseCommandArgument } from "./json-text.ts";
export {
  APPLIED_IDS_KEPT,
  CONTROL_DIR_ENV,
  cursorFileName,
  MAX_COMMAND_BYTES,
  QUEUE_FILES,
} from "./layout.ts";
export { MAX_CALLS_BETWEEN_POLLS } from "./poll-schedule.ts";
export { controlChannelMeta } from "./run-channel.ts";
export { type Kwargs, Validated, type ValidatedCall } from "./validated.ts";

// NATS JetStream (docs/protocol.md): the ControlChannel of a run over NATS, connection settings.

// The supervisor's bridge between a remote channel (NATS) and the node-local file queue.
export { BRIDGE_STATE_FILE, type BridgeOptions, ControlBridge } from "./bridge.ts";
export {
  type AckSubscription,
  ackMsgId,
  type Follower,
  NatsChannel,
  NatsChannelFactory,
  type NatsChannelOptions,
  type NatsSequencedCommand,
} from "./nats/channel.ts";
export {
  type ConnectNatsOptions,
  checkOpenServer,
  connectNats,
  DEFAULT_NATS_URL,
  natsConnectOptions,
  natsUrlWithoutCredentials,
  openServerWarning,
  RECONNECT_BACKOFF,
  type ReconnectBackoff,
  reconnectBackoff,
} from "./nats/connect.ts";
export {
  accountKeyPair,
  type HostCredentials,
  hostPermissions,
  loadAccountSeed,
  MintHostCredentialsOptions,
  MintRunCredentialsOptions,
  mintHostCredentials,
  mintRunCredentials,
  type RunCredentials,
  type RunPermissionOptions,
  type RunPermissions,
  runPermissions,
} from "./nats/credentials.ts";
export {
  RenewalReply,
  type RenewalService,
  type RenewedCredentials,
  renewRunCredentials,
  type ServeAllRenewalsOptions,
  type ServeCredentialRenewalsOptions,
  serveAllCredentialRenewals,
  serveCredentialRenewals,
} from "./nats/renewal.ts";
export { requestWhenListening } from "./nats/request.ts";
export type { SubjectMessage } from "./nats/scan.ts";
export {
  loadNatsContext,
  type NatsContext,
  NatsContextFile,
  type NatsContextOptions,
  NatsSettings,
  NatsTlsSettings,
  natsConfigDir,
  natsSettingsFromConfig,
  type ParsedNatsSettings,
  resolveNatsSettings,
} from "./nats/settings.ts";
export { ensureControlStream, prepareControlStream } from "./nats/stream.ts";
export {
  type ControlStreamConfig,
  controlStreamConfig,
  DEFAULT_PREFIX,
  hostSubjectBase,
  PROTOCOL_VERSION,
  type RunSubjects,
  runInboxPrefix,
  runSubjects,
  runToken,
  STREAM_LIMITS,
  streamName,
  type TelemetrySubjects,
  telemetrySubjects,
} from "./nats/subjects.ts";
export {
  encodeTelemetry,
  followTelemetry,
  type HostSubjects,
  hostSubjects,
  isTelemetryFile,
  MAX_TELEMETRY_CHUNK,
  NatsTelemetry,
  TELEMETRY_FILES,
  TelemetryChunk,
  type TelemetryFile,
  type TelemetryFollower,
  type TelemetryHandlers,
  TelemetryHeartbeat,
  TelemetryStatus,
} from "./nats/telemetry.ts";
export {
  ControlsMessage,
  commandEntry,
  decodeAck,
  decodeCommand,
  decodeControls,
  decodeRunState,
  encodeMessage,
  isValidCommandId,
  MAX_ID_LENGTH,
  RunState,
  RunStateMessage,
  type WireCommand,
} from "./nats/wire.ts";
