// Per-run NATS credentials against a real nats-server in JWT (operator) mode: the run's user JWT,
// minted from the account seed the launching side holds, carries the node-local bridge of its
// run end to end (`runctl ctl … --wait` with the user's credentials, through the CLI); it is
// refused on another run's subjects, core and JetStream API alike, and the server says so; and
// once it expires the server closes the connection holding it and refuses new ones. A machine's
// own credential (mintHostCredentials) takes requests on its inbox, answers them and publishes its
// status, and is refused on every run's subjects.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ControlBridge,
  connectNats,
  FileQueue,
  hostSubjects,
  mintHostCredentials,
  mintRunCredentials,
  NatsChannel,
  RuntimeController,
  renewRunCredentials,
  runSubjects,
  serveCredentialRenewals,
  streamName,
  telemetrySubjects,
} from "@runctl/control";
import { ProviderError } from "@runctl/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type NatsServer, startNatsServer } from "../src/nats-server.ts";
import { runctlJson, type Workspace, waitFor, workspace } from "../src/runctl-cli.ts";

const PREFIX = "runctl";
const STREAM = streamName(PREFIX);
const RUN_A = "20261203-100000-aaaaaa";
const RUN_B = "20261203-100000-bbbbbb";
const A = runSubjects(PREFIX, RUN_A);
const B = runSubjects(PREFIX, RUN_B);

const Sent = z.object({
  command: z.object({ id: z.string() }).loose(),
  acks: z.array(z.object({ rank: z.number(), status: z.string(), value: z.unknown() }).loose()),
});

let server: NatsServer;
let auth: NonNullable<NatsServer["jwt"]>;
let operator: NatsChannel;
let ws: Workspace;
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startNatsServer({ jwt: true });
  if (server.jwt === undefined) throw new Error("no JWT auth");
  auth = server.jwt;
  // The launching side creates the stream (run credentials may not) and a command for run B.
  operator = await NatsChannel.connect({ url: server.url, credsText: auth.userCreds }, RUN_B);
  await operator.publish({ path: "optimizer.lr.multiplier", args: [2] });
  ws = await workspace({ RUNCTL_NATS_URL: server.url, RUNCTL_NATS_CREDS: auth.userCredsFile });
});

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  await operator?.close();
  await server?.close();
  if (ws) await rm(ws.home, { recursive: true, force: true });
});

async function runCreds(runId: string, expiresInSeconds = 600) {
  return await mintRunCredentials({ account: auth.accountSeed, prefix: PREFIX, runId, expiresInSeconds });
}

async function connectAs(creds: Awaited<ReturnType<typeof runCreds>>): Promise<NatsConnection> {
  const nc = await connectNats({ url: server.url, credsText: creds.creds, inboxPrefix: creds.inboxPrefix });
  cleanup.push(() => nc.close());
  return nc;
}

async function serverLog(): Promise<string> {
  return await readFile(server.logPath, "utf8");
}

/** The server's `-ERR` messages on a connection, as they arrive. */
function serverErrors(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error") seen.push(status.error.message);
    }
  })();
  return seen;
}

describe("a run's NATS credentials", () => {
  it("carry its bridge end to end: runctl ctl --wait with the user's credentials gets the rank's ack", async () => {
    const creds = await runCreds(RUN_A);
    const channel = await NatsChannel.connect(
      { url: server.url, credsText: creds.creds, inboxPrefix: creds.inboxPrefix },
      RUN_A,
    );
    cleanup.push(() => channel.close());
    const queueDir = await mkdtemp(join(tmpdir(), "runctl-creds-queue-"));
    cleanup.push(() => rm(queueDir, { recursive: true, force: true }));
    const warnings: string[] = [];
    const bridge = new ControlBridge({
      remote: channel,
      local: new FileQueue(queueDir),
      onWarning: (m) => warnings.push(m),
    }).start();
    // Rank 0 of a one-rank run, reading the node-local queue as a training loop does.
    const rank = new RuntimeController({ queueDir, rank: 0, worldSize: 1 });
    let multiplier = 1;
    rank.register("optimizer.lr.multiplier", (_ctx, value) => {
      multiplier = Number(value);
      return multiplier;
    });
    const polling = setInterval(() => void rank.pollAndApply({}, 0).catch(() => undefined), 100);
    cleanup.push(async () => clearInterval(polling));

    const sent = await runctlJson(["ctl", RUN_A, "optimizer.lr.multiplier", "0.5", "--wait"], ws);
    expect(sent.code, sent.stderr).toBe(0);
    const { command, acks } = Sent.parse(sent.doc);
    expect(acks).toEqual([expect.objectContaining({ rank: 0, status: "applied", value: 0.5 })]);
    expect(multiplier).toBe(0.5);
    const line = JSON.parse((await readFile(join(queueDir, "commands.jsonl"), "utf8")).trim());
    expect(line).toMatchObject({ id: command.id, path: "optimizer.lr.multiplier", args: [0.5] });
    // The user CLI holds full credentials: no warning that the server lets anyone in.
    expect(sent.stderr).not.toMatch(/without credentials/);

    clearInterval(polling);
    await bridge.stop();
    expect(await operator.nc.request("$JS.API.INFO", "").then(() => true)).toBe(true);
    const state = await (await NatsChannel.open(operator.nc, RUN_A)).readState();
    expect(state?.state).toBe("ended");
    expect(warnings).toEqual([]);
    // Everything the bridge did stayed within its permissions.
    expect(await serverLog()).not.toMatch(/Violation/);
  });

  it("are refused on another run's subjects and its messages in the stream, and the server reports each", async () => {
    const creds = await runCreds(RUN_A);
    const nc = await connectAs(creds);
    const errors = serverErrors(nc);
    const refused = (subject: string) => `Permissions Violation for Publish to "${subject}"`;

    // Publishing a command for run B, plainly and through JetStream.
    nc.publish(B.commands, "steer");
    await nc.flush();
    await expect(jetstream(nc).publish(B.commands, "steer", { timeout: 5_000 })).rejects.toThrow(
      refused(B.commands),
    );
    // Reading B's acks as they come.
    const sub = nc.subscribe(B.acks);
    const ended = (async () => {
      for await (const _ of sub) return "message";
      return "ended";
    })().catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
    expect(await ended).toBe(`Permissions Violation for Subscription to "${B.acks}"`);

    // Reading B's messages through the JetStream API.
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await expect(
      jsm.consumers.add(STREAM, { name: "peek", filter_subject: B.commands, ack_policy: "none" as never }),
    ).rejects.toThrow(refused(`$JS.API.CONSUMER.CREATE.${STREAM}.peek.${B.commands}`));
    await expect(jsm.direct.getMessage(STREAM, { last_by_subj: B.commands })).rejects.toThrow(
      refused(`$JS.API.DIRECT.GET.${STREAM}.${B.commands}`),
    );
    await expect(jsm.direct.getMessage(STREAM, { seq: 1, next_by_subj: B.commands })).rejects.toThrow(
      refused(`$JS.API.DIRECT.GET.${STREAM}`),
    );
    await expect(jsm.streams.getMessage(STREAM, { seq: 1 })).rejects.toThrow(
      refused(`$JS.API.STREAM.MSG.GET.${STREAM}`),
    );
    await expect(jsm.consumers.list(STREAM).next()).rejects.toThrow(
      refused(`$JS.API.CONSUMER.LIST.${STREAM}`),
    );
    // Nor may it change the stream.
    await expect(jsm.streams.purge(STREAM)).rejects.toThrow(refused(`$JS.API.STREAM.PURGE.${STREAM}`));
    await expect(jsm.streams.update(STREAM, { max_age: 1 })).rejects.toThrow("Permissions Violation");
    // A consumer created under its own filter in the API subject but B's in the request: JetStream refuses it.
    const mismatch = await nc.request(
      `$JS.API.CONSUMER.CREATE.${STREAM}.peek.${A.commands}`,
      JSON.stringify({
        stream_name: STREAM,
        config: { name: "peek", filter_subject: B.commands, ack_policy: "none" },
      }),
      { timeout: 5_000 },
    );
    expect(JSON.parse(mismatch.string())).toMatchObject({ error: { err_code: 10131 } });
    // Its own run's last command is readable (none, or the one the first test sent).
    const own = await jsm.direct.getMessage(STREAM, { last_by_subj: A.commands });
    expect(own === null || own.subject === A.commands).toBe(true);
    // What stays exposed (docs/protocol.md, "Security"): stream info names the subjects with
    // messages and their counts, so which runs exist, but no content.
    const info = await jsm.streams.info(STREAM, { subjects_filter: `${PREFIX}.ctl.>` });
    expect(info.state.subjects?.[B.commands]).toBe(1);
    // Its telemetry goes out.
    nc.publish(telemetrySubjects(PREFIX, RUN_A).hb, "alive");
    await nc.flush();

    // The client was told, and the server logged each violation with the user's key.
    expect(errors).toContain(refused(B.commands));
    expect(errors).toContain(`Permissions Violation for Subscription to "${B.acks}"`);
    expect(errors).not.toContain(refused(telemetrySubjects(PREFIX, RUN_A).hb));
    const log = await serverLog();
    expect(log).toContain(`Publish Violation - Nkey "${creds.userPublicKey}", Subject "${B.commands}"`);
    expect(log).toContain(`Subscription Violation - Nkey "${creds.userPublicKey}", Subject "${B.acks}"`);
    // Run B's commands are untouched: still the one the operator published.
    expect((await operator.read()).entries).toHaveLength(1);
  });

  it("are minted by `runctl nats creds` from the configured account seed, which config show hides", async () => {
    const env = { ...ws.env, RUNCTL_NATS_ACCOUNT_SEED: auth.accountSeed };
    const minted = await runctlJson(["nats", "creds", "--run", RUN_A, "--ttl", "10m"], { ...ws, env });
    expect(minted.code, minted.stderr).toBe(0);
    const doc = z
      .object({ creds: z.string(), user: z.string(), expiresAt: z.string(), inboxPrefix: z.string() })
      .parse(minted.doc);
    expect(minted.stderr).toMatch(/Secret: whoever holds these credentials acts as run/);
    const expiresIn = Date.parse(doc.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(0);
    expect(expiresIn).toBeLessThanOrEqual(600_000);
    const nc = await connectNats({ url: server.url, credsText: doc.creds, inboxPrefix: doc.inboxPrefix });
    cleanup.push(() => nc.close());
    await expect(jetstream(nc).publish(B.commands, "steer", { timeout: 5_000 })).rejects.toThrow(
      "Permissions Violation",
    );
    expect(await serverLog()).toContain(`Publish Violation - Nkey "${doc.user}"`);

    const shown = await runctlJson(["config", "show"], { ...ws, env });
    expect(JSON.stringify(shown.doc)).not.toContain(auth.accountSeed);
    expect(JSON.stringify(shown.doc)).toContain('"account_seed":"***"');
    const wrong = await runctlJson(["nats", "creds", "--run", RUN_A], {
      ...ws,
      env: { ...ws.env, RUNCTL_NATS_ACCOUNT_SEED: auth.accountPublicKey },
    });
    expect(wrong.code).not.toBe(0);
    expect(JSON.stringify(wrong.doc)).toContain("must be a NATS account seed");
  });

  it("are renewed over NATS before they expire, for as long as the run is active, and by their own run only", async () => {
    const first = await runCreds(RUN_A, 3);
    let current = first.creds;
    const nc = await connectNats(
      { url: server.url, inboxPrefix: first.inboxPrefix },
      { credentials: () => current },
    );
    cleanup.push(() => nc.close());
    const statuses: string[] = [];
    let reconnected: () => void = () => undefined;
    const reconnect = new Promise<void>((resolve) => {
      reconnected = resolve;
    });
    void (async () => {
      for await (const status of nc.status()) {
        statuses.push(status.type === "error" ? status.error.message : status.type);
        if (status.type === "reconnect") reconnected();
      }
    })();
    let active = true;
    const service = serveCredentialRenewals({
      connection: operator.nc,
      account: auth.accountSeed,
      prefix: PREFIX,
      runId: RUN_A,
      expiresInSeconds: 600,
      isActive: () => active,
    });
    cleanup.push(() => service.stop());
    await service.ready;

    const renewed = await renewRunCredentials(nc, { prefix: PREFIX, runId: RUN_A });
    expect(renewed.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime());
    expect(renewed.inboxPrefix).toBe(first.inboxPrefix);
    current = renewed.creds;
    await nc.reconnect();
    await reconnect;
    // Past the first credentials' expiry the connection is still up and still scoped to run A.
    await delay(Math.max(0, first.expiresAt.getTime() + 1_000 - Date.now()));
    await nc.flush();
    nc.publish(telemetrySubjects(PREFIX, RUN_A).hb, "alive");
    await nc.flush();
    expect(statuses).not.toContain("User Authentication Expired");
    expect(nc.isClosed()).toBe(false);
    await expect(jetstream(nc).publish(B.commands, "steer", { timeout: 5_000 })).rejects.toThrow(
      "Permissions Violation",
    );

    // Run B's credentials cannot ask for run A's.
    const other = await connectAs(await runCreds(RUN_B));
    await expect(renewRunCredentials(other, { prefix: PREFIX, runId: RUN_A })).rejects.toThrow(
      `Permissions Violation for Publish to "${telemetrySubjects(PREFIX, RUN_A).renew}"`,
    );
    // Once the run has ended, the launching side says no.
    active = false;
    const refused = await renewRunCredentials(nc, { prefix: PREFIX, runId: RUN_A }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ProviderError);
    expect((refused as ProviderError).code).toBe("nats_renewal_failed");
    expect((refused as ProviderError).message).toMatch(/no longer active/);
  });

  it("expire: the server closes the connection that holds them and refuses new ones", async () => {
    const creds = await runCreds(RUN_A, 3);
    const nc = await connectNats({ url: server.url, credsText: creds.creds, inboxPrefix: creds.inboxPrefix });
    cleanup.push(() => nc.close());
    const statuses: string[] = [];
    const expired = (async () => {
      for await (const status of nc.status()) {
        statuses.push(status.type === "error" ? status.error.message : status.type);
        if (status.type === "error") return status.error.message;
      }
      return "no error";
    })();
    // The connection works until then.
    await nc.flush();
    expect(await expired).toBe("User Authentication Expired");
    // The client tries again with the same credentials, is refused and gives up: closed for good.
    const closedWith = await nc.closed();
    // (nats.js reports its last dial's error; the server's word is the status above.)
    expect(closedWith).toBeInstanceOf(Error);
    expect(nc.isClosed()).toBe(true);
    expect(statuses[0]).toBe("User Authentication Expired");

    // The server compares `exp` with the clock in whole seconds: within the second it expires in,
    // a new connection is let in and closed at once; from the next second on it is refused.
    await delay(Math.max(0, creds.expiresAt.getTime() + 1_000 - Date.now()));

    const again = await connectNats({
      url: server.url,
      credsText: creds.creds,
      inboxPrefix: creds.inboxPrefix,
    }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(again).toBeInstanceOf(ProviderError);
    expect((again as ProviderError).code).toBe("nats_auth_refused");
    expect((again as ProviderError).message).toMatch(/Authorization Violation/);
    await waitFor(
      async () => /authentication error/.test(await serverLog()),
      "the server to log the refusal",
    );
  });
});

describe("a machine's own NATS credentials", () => {
  it("take requests on its inbox and answer them, publish its status, and are refused on any run's subjects", async () => {
    const hostId = "aws-20261203-100000-cccccc";
    const host = hostSubjects(PREFIX, hostId);
    const creds = await mintHostCredentials({
      account: auth.accountSeed,
      prefix: PREFIX,
      hostId,
      expiresInSeconds: 600,
    });
    expect(creds.permissions).toEqual({ publish: [host.status], subscribe: [host.inbox] });
    const nc = await connectNats({ url: server.url, credsText: creds.creds });
    cleanup.push(() => nc.close());
    const errors = serverErrors(nc);
    nc.subscribe(host.inbox, {
      callback: (_e, msg) => {
        msg.respond(`took ${new TextDecoder().decode(msg.data)}`);
      },
    });
    const status = operator.nc.subscribe(host.status, { max: 1 });
    await nc.flush();
    await operator.nc.flush();

    // The launching side (the user's credentials) asks; the machine answers on the reply subject.
    const reply = await operator.nc.request(host.inbox, "run-1", { timeout: 5_000 });
    expect(new TextDecoder().decode(reply.data)).toBe("took run-1");
    nc.publish(host.status, "idle");
    for await (const msg of status) expect(new TextDecoder().decode(msg.data)).toBe("idle");

    // Nothing of any run: not its commands, not its telemetry, not another machine's inbox.
    nc.publish(B.commands, "steer");
    nc.publish(telemetrySubjects(PREFIX, RUN_B).out, "forged");
    nc.publish(hostSubjects(PREFIX, "other-host").inbox, "a run");
    await nc.flush();
    const sub = nc.subscribe(telemetrySubjects(PREFIX, RUN_B).out);
    const ended = (async () => {
      for await (const _ of sub) return "message";
      return "ended";
    })().catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
    expect(await ended).toBe(
      `Permissions Violation for Subscription to "${telemetrySubjects(PREFIX, RUN_B).out}"`,
    );
    await waitFor(() => errors.length >= 3, `the server to refuse each publish: ${errors.join("; ")}`);
    expect(errors).toContain(`Permissions Violation for Publish to "${B.commands}"`);
    expect(errors).toContain(
      `Permissions Violation for Publish to "${telemetrySubjects(PREFIX, RUN_B).out}"`,
    );
    expect(errors).toContain(
      `Permissions Violation for Publish to "${hostSubjects(PREFIX, "other-host").inbox}"`,
    );
  });
});
