/**
 * Per-run NATS credentials (docs/protocol.md, "Security"): a user JWT signed
 * by an account key the launching side holds, that may publish and subscribe
 * only on one run's subjects, and the few JetStream API subjects its bridge
 * needs scoped to that run where nats-server allows it; it expires. The
 * machine gets the `.creds` text (JWT + the user's seed, a fresh key per
 * mint) and nothing long-lived: the account seed never leaves the launcher.
 *
 * Built with `@nats-io/jwt` and `@nats-io/nkeys` (the NATS authors' libraries
 * of the nats.js v3 line); nats-server, which runs the Go JWT library,
 * validates what they encode.
 */
import { readFile } from "node:fs/promises";
import { createUser, encodeUser, fmtCreds, fromSeed, type KeyPair } from "@nats-io/jwt";
import { ConfigError, type NatsConfig, UserError } from "@runctl/core";
import { z } from "zod";
import { hostSubjectBase, runInboxPrefix, runToken, streamName, validatePrefix } from "./subjects.ts";

/** The subjects a run's user may publish and subscribe to; everything else is refused. */
export interface RunPermissions {
  publish: string[];
  subscribe: string[];
}

export interface RunPermissionOptions {
  prefix: string;
  runId: string;
  /** The machine the run is on: its subjects (`<prefix>.host.<host>.>`) are allowed too. */
  hostId?: string;
}

/**
 * What a run's credentials allow, in the order docs/protocol.md lists it:
 * - the run's own subjects: control (`<prefix>.ctl.<run>.>`), telemetry
 *   (`<prefix>.tel.<run>.>`) and, with a host, the machine's
 *   (`<prefix>.host.<host>.>`), both ways;
 * - replies on its own inbox prefix (`_INBOX_<run>.>`), so the connection
 *   must use runInboxPrefix(runId);
 * - the JetStream API of the control stream, as narrowly as nats-server 2.9
 *   scopes it: stream info; direct get of the last message of its own
 *   subjects (the subject is in the API subject); consumers created only with
 *   a filter on its own subjects (the filter is in the API subject, and the
 *   server refuses a config whose filter differs); pulling, inspecting and
 *   deleting a consumer by name, which cannot be scoped to a run (see the
 *   residual exposure in docs/protocol.md).
 * Not allowed: creating or updating the stream, direct or leader gets by body
 * (`$JS.API.DIRECT.GET.<stream>`, `STREAM.MSG.GET`, which read any subject),
 * listing consumers or streams, purging or deleting anything.
 */
export function runPermissions(options: RunPermissionOptions): RunPermissions {
  const prefix = validatePrefix(options.prefix);
  const run = runToken(options.runId);
  const stream = streamName(prefix);
  const ctl = `${prefix}.ctl.${run}`;
  const own = [`${ctl}.>`, `${prefix}.tel.${run}.>`];
  if (options.hostId !== undefined) own.push(`${hostSubjectBase(prefix, options.hostId)}.>`);
  const api = "$JS.API";
  return {
    publish: [
      ...own,
      `${api}.STREAM.INFO.${stream}`,
      `${api}.DIRECT.GET.${stream}.${ctl}.>`,
      `${api}.CONSUMER.CREATE.${stream}.*.${ctl}.>`,
      `${api}.CONSUMER.MSG.NEXT.${stream}.*`,
      `${api}.CONSUMER.INFO.${stream}.*`,
      `${api}.CONSUMER.DELETE.${stream}.*`,
    ],
    subscribe: [...own, `${runInboxPrefix(options.runId)}.>`],
  };
}

/**
 * What a machine's own credential allows (docs/protocol.md, "Host credentials"): take requests
 * on its inbox (`<prefix>.host.<host>.inbox`), answer each one once, and publish its status
 * (`<prefix>.host.<host>.status`). Nothing of any run: each run brings its own credential.
 */
export function hostPermissions(options: { prefix: string; hostId: string }): RunPermissions {
  const base = hostSubjectBase(validatePrefix(options.prefix), options.hostId);
  return { publish: [`${base}.status`], subscribe: [`${base}.inbox`] };
}

const ACCOUNT_SEED = /^SA[A-Z2-7]+$/;

/**
 * The key pair of an account seed (`SA…`), or a ConfigError that says what
 * was given instead (a user or operator seed, a public key, garbage) without
 * echoing it.
 */
export function accountKeyPair(seed: string, where = "the NATS account seed"): KeyPair {
  const text = seed.trim();
  const kind = seedKind(text);
  if (kind !== "account") {
    throw new ConfigError(`${where} is not an account seed: it looks like ${kind}`, {
      code: "nats_account_seed_invalid",
      hint: "Give the account's seed (it starts with SA; `nsc export keys --account NAME` or the account's .nk file), as nats.account_seed, nats.account_seed_file or RUNCTL_NATS_ACCOUNT_SEED.",
    });
  }
  try {
    return fromSeed(new TextEncoder().encode(text));
  } catch {
    throw new ConfigError(`${where} is not an account seed: its checksum or encoding is wrong`, {
      code: "nats_account_seed_invalid",
      hint: "Copy the whole seed (58 characters starting with SA).",
    });
  }
}

function seedKind(text: string): string {
  if (ACCOUNT_SEED.test(text)) return "account";
  if (/^S[OUNCPX][A-Z2-7]+$/.test(text)) return `a seed of another kind (S${text[1]}…)`;
  if (/^[OAUNC][A-Z2-7]{55}$/.test(text)) return "a public key, not a seed";
  if (text === "") return "an empty value";
  return "something else";
}

export const MintRunCredentialsOptions = z.strictObject({
  /** The account's seed (`SA…`) that signs the user JWT; or its signing key's seed with `issuerAccount`. */
  account: z.string().min(1),
  /** When `account` is one of the account's signing keys: the account's public key (`A…`). */
  issuerAccount: z
    .string()
    .regex(/^A[A-Z2-7]{55}$/, "must be an account public key (A…)")
    .optional(),
  prefix: z.string().min(1),
  runId: z.string().min(1),
  hostId: z.string().min(1).optional(),
  /** Lifetime; the server closes connections of the user when it ends and refuses new ones. */
  expiresInSeconds: z.number().int().positive(),
  /** The user's name as the server shows it (default `runctl-run-<run>`). */
  name: z.string().min(1).optional(),
  /** Now, for tests (default Date.now()). */
  now: z.number().optional(),
});
export type MintRunCredentialsOptions = z.input<typeof MintRunCredentialsOptions>;

export interface RunCredentials {
  /** The `.creds` text (user JWT and the user's seed), as `nsc generate creds` writes it. A secret. */
  creds: string;
  /** The user's public key (`U…`): the JWT's subject, what the server's monitoring shows. */
  userPublicKey: string;
  /** When the JWT expires (whole seconds). */
  expiresAt: Date;
  /** The inbox prefix a connection with these credentials must use. */
  inboxPrefix: string;
  permissions: RunPermissions;
}

/** Mints credentials for one run: a new user key, a user JWT with runPermissions, signed by the account. */
export async function mintRunCredentials(options: MintRunCredentialsOptions): Promise<RunCredentials> {
  const parsed = MintRunCredentialsOptions.safeParse(options);
  if (!parsed.success) {
    throw new UserError(`cannot mint NATS run credentials: ${z.prettifyError(parsed.error)}`, {
      code: "nats_creds_invalid_request",
    });
  }
  const o = parsed.data;
  const permissions = runPermissions({
    prefix: o.prefix,
    runId: o.runId,
    ...(o.hostId !== undefined ? { hostId: o.hostId } : {}),
  });
  const minted = await mintUser(o, permissions, o.name ?? `runctl-run-${o.runId}`, o.hostId !== undefined);
  return {
    ...minted,
    inboxPrefix: runInboxPrefix(o.runId),
    permissions,
  };
}

export const MintHostCredentialsOptions = MintRunCredentialsOptions.pick({
  account: true,
  issuerAccount: true,
  prefix: true,
  expiresInSeconds: true,
  now: true,
}).extend({ hostId: z.string().min(1) });
export type MintHostCredentialsOptions = z.input<typeof MintHostCredentialsOptions>;

export interface HostCredentials {
  /** The `.creds` text. A secret. */
  creds: string;
  userPublicKey: string;
  expiresAt: Date;
  permissions: RunPermissions;
}

/** Mints a machine's own credentials: a new user key, a user JWT with hostPermissions, signed by the account. */
export async function mintHostCredentials(options: MintHostCredentialsOptions): Promise<HostCredentials> {
  const parsed = MintHostCredentialsOptions.safeParse(options);
  if (!parsed.success) {
    throw new UserError(`cannot mint NATS host credentials: ${z.prettifyError(parsed.error)}`, {
      code: "nats_creds_invalid_request",
    });
  }
  const o = parsed.data;
  const permissions = hostPermissions({ prefix: o.prefix, hostId: o.hostId });
  return { ...(await mintUser(o, permissions, `runctl-host-${o.hostId}`, true)), permissions };
}

/**
 * The account seed from `[nats]`: `account_seed` (or RUNCTL_NATS_ACCOUNT_SEED)
 * or the file `account_seed_file` (an nsc `.nk` file: the seed is its first
 * line starting with SA), checked. A ConfigError names the fix when neither
 * or both are set, the file cannot be read, or it is not an account seed.
 */
export async function loadAccountSeed(
  config: Pick<NatsConfig, "account_seed" | "account_seed_file">,
): Promise<string> {
  const { account_seed: inline, account_seed_file: file } = config;
  if (inline !== undefined && file !== undefined) {
    throw new ConfigError("both nats.account_seed and nats.account_seed_file are set", {
      code: "nats_account_seed_ambiguous",
      hint: "Keep one of them (RUNCTL_NATS_ACCOUNT_SEED sets nats.account_seed).",
    });
  }
  if (inline !== undefined) {
    accountKeyPair(inline, "nats.account_seed");
    return inline.trim();
  }
  if (file === undefined) {
    throw new ConfigError("no NATS account seed is configured to sign run credentials", {
      code: "nats_account_seed_missing",
      hint: "Set nats.account_seed_file to the account's seed file (or RUNCTL_NATS_ACCOUNT_SEED); `nsc` keeps it under ~/.local/share/nats/nsc/keys/keys/A/…/.nk.",
    });
  }
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read nats.account_seed_file ${file}: ${String(error)}`, {
      code: "nats_account_seed_unreadable",
      hint: "Point nats.account_seed_file at a readable file holding the account seed (SA…).",
    });
  }
  const seed =
    text
      .split(/\r?\n/)
      .find((line) => line.trim().startsWith("SA"))
      ?.trim() ?? text.trim();
  accountKeyPair(seed, `nats.account_seed_file ${file}`);
  return seed;
}

/**
 * A new user key and its JWT with these permissions, signed by the account (or by a signing
 * key for `issuerAccount`). A machine with an inbox answers requests on it: one reply each.
 */
async function mintUser(
  o: {
    account: string;
    issuerAccount?: string | undefined;
    expiresInSeconds: number;
    now?: number | undefined;
  },
  permissions: RunPermissions,
  name: string,
  replies: boolean,
): Promise<{ creds: string; userPublicKey: string; expiresAt: Date }> {
  const signer = accountKeyPair(o.account);
  const user = createUser();
  const exp = Math.floor((o.now ?? Date.now()) / 1000) + o.expiresInSeconds;
  const claims = {
    pub: { allow: permissions.publish },
    sub: { allow: permissions.subscribe },
    ...(replies ? { resp: { max: 1, ttl: 60_000_000_000 } } : {}),
    // The JWT alone is not enough: the client must prove it holds the user's seed.
    bearer_token: false,
  };
  const jwt =
    o.issuerAccount === undefined
      ? await encodeUser(name, user, signer, claims, { exp })
      : await encodeUser(name, user, o.issuerAccount, claims, { exp, signer });
  return {
    creds: new TextDecoder().decode(fmtCreds(jwt, user)),
    userPublicKey: user.getPublicKey(),
    expiresAt: new Date(exp * 1000),
  };
}
