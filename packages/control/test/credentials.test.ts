// Per-run NATS credentials: the claims of the minted user JWT, checked by decoding and verifying
// it with the NATS JWT library (a real server's verdict is in test-e2e/test/nats-run-credentials).

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAccount, createOperator, createUser, decode, parseCreds, type User } from "@nats-io/jwt";
import { fromSeed } from "@nats-io/nkeys";
import { ConfigError, UserError } from "@runctl/core";
import { describe, expect, it } from "vitest";
import {
  accountKeyPair,
  loadAccountSeed,
  mintRunCredentials,
  runInboxPrefix,
  runPermissions,
  runSubjects,
  telemetrySubjects,
} from "../src/mod.ts";

const seedOf = (kp: { getSeed(): Uint8Array }) => new TextDecoder().decode(kp.getSeed());

describe("runPermissions", () => {
  it("allows exactly the run's subjects, its inbox and the run-scoped JetStream API", () => {
    expect(runPermissions({ prefix: "team.a", runId: "exp.1" })).toEqual({
      publish: [
        "team.a.ctl.exp%2E1.>",
        "team.a.tel.exp%2E1.>",
        "$JS.API.STREAM.INFO.TEAM_A_CTL",
        "$JS.API.DIRECT.GET.TEAM_A_CTL.team.a.ctl.exp%2E1.>",
        "$JS.API.CONSUMER.CREATE.TEAM_A_CTL.*.team.a.ctl.exp%2E1.>",
        "$JS.API.CONSUMER.MSG.NEXT.TEAM_A_CTL.*",
        "$JS.API.CONSUMER.INFO.TEAM_A_CTL.*",
        "$JS.API.CONSUMER.DELETE.TEAM_A_CTL.*",
      ],
      subscribe: ["team.a.ctl.exp%2E1.>", "team.a.tel.exp%2E1.>", "_INBOX_exp%2E1.>"],
    });
  });

  it("adds the machine's subjects with a host", () => {
    const p = runPermissions({ prefix: "runctl", runId: "r1", hostId: "i-0abc" });
    expect(p.publish).toContain("runctl.host.i-0abc.>");
    expect(p.subscribe).toContain("runctl.host.i-0abc.>");
  });

  it("cannot be widened by a run id with wildcards or dots", () => {
    const p = runPermissions({ prefix: "runctl", runId: "a.>" });
    expect(p.publish[0]).toBe("runctl.ctl.a%2E%3E.>");
    for (const subject of [...p.publish, ...p.subscribe]) {
      // The only wildcards are the trailing `>` of an own subtree and a consumer name `*`.
      const tokens = subject.split(".");
      tokens.forEach((t, i) => {
        if (t === ">") expect(i).toBe(tokens.length - 1);
        if (t === "*") expect(subject).toMatch(/^\$JS\.API\.CONSUMER\./);
      });
    }
  });

  it("covers every subject the run's channel and telemetry use, and no other run's", () => {
    const p = runPermissions({ prefix: "runctl", runId: "run-a" });
    const matches = (pattern: string, subject: string) => {
      const a = pattern.split(".");
      const b = subject.split(".");
      for (let i = 0; i < a.length; i++) {
        if (a[i] === ">") return b.length > i;
        if (a[i] !== "*" && a[i] !== b[i]) return false;
      }
      return a.length === b.length;
    };
    const allowed = (subject: string) => p.publish.some((pattern) => matches(pattern, subject));
    for (const s of [
      ...Object.values(runSubjects("runctl", "run-a")),
      ...Object.values(telemetrySubjects("runctl", "run-a")),
    ]) {
      expect(allowed(s), s).toBe(true);
    }
    for (const s of Object.values(runSubjects("runctl", "run-b"))) expect(allowed(s), s).toBe(false);
    expect(allowed("$JS.API.STREAM.CREATE.RUNCTL_CTL")).toBe(false);
    expect(allowed("$JS.API.STREAM.UPDATE.RUNCTL_CTL")).toBe(false);
    expect(allowed("$JS.API.DIRECT.GET.RUNCTL_CTL")).toBe(false);
    expect(allowed("$JS.API.STREAM.MSG.GET.RUNCTL_CTL")).toBe(false);
    expect(allowed("$JS.API.CONSUMER.CREATE.RUNCTL_CTL")).toBe(false);
    expect(allowed("$JS.API.CONSUMER.CREATE.RUNCTL_CTL.c1.runctl.ctl.run-b.cmd")).toBe(false);
    expect(allowed("$JS.API.CONSUMER.CREATE.RUNCTL_CTL.c1.runctl.ctl.run-a.cmd")).toBe(true);
  });
});

describe("mintRunCredentials", () => {
  it("writes a .creds file whose JWT the account signed, for a fresh user key, expiring", async () => {
    const account = createAccount();
    const now = Date.UTC(2026, 0, 1);
    const minted = await mintRunCredentials({
      account: seedOf(account),
      prefix: "runctl",
      runId: "run-a",
      expiresInSeconds: 3600,
      now,
    });
    expect(minted.creds).toMatch(
      /^-----BEGIN NATS USER JWT-----\n[\w-]+\.[\w-]+\.[\w-]+\n------END NATS USER JWT------\n/,
    );
    expect(minted.creds).toContain("-----BEGIN USER NKEY SEED-----\nSU");
    const parsed = await parseCreds(new TextEncoder().encode(minted.creds));
    // decode() verifies the signature with the issuer's public key.
    const claims = decode<User>(parsed.jwt);
    expect(claims.iss).toBe(account.getPublicKey());
    expect(claims.sub).toBe(minted.userPublicKey);
    expect(fromSeed(new TextEncoder().encode(parsed.key)).getPublicKey()).toBe(minted.userPublicKey);
    expect(claims.exp).toBe(now / 1000 + 3600);
    expect(minted.expiresAt.toISOString()).toBe("2026-01-01T01:00:00.000Z");
    expect(claims.name).toBe("runctl-run-run-a");
    expect(claims.nats.type).toBe("user");
    expect(claims.nats.bearer_token).toBe(false);
    expect(claims.nats.issuer_account).toBeUndefined();
    const permissions = runPermissions({ prefix: "runctl", runId: "run-a" });
    expect(claims.nats.pub).toEqual({ allow: permissions.publish });
    expect(claims.nats.sub).toEqual({ allow: permissions.subscribe });
    expect(claims.nats.resp).toBeUndefined();
    expect(minted.inboxPrefix).toBe(runInboxPrefix("run-a"));
    // The account seed never ends up in what goes to the machine.
    expect(minted.creds).not.toContain(seedOf(account));

    const again = await mintRunCredentials({
      account: seedOf(account),
      prefix: "runctl",
      runId: "run-a",
      expiresInSeconds: 60,
    });
    expect(again.userPublicKey).not.toBe(minted.userPublicKey);
  });

  it("lets a machine with a host inbox answer one reply per request", async () => {
    const minted = await mintRunCredentials({
      account: seedOf(createAccount()),
      prefix: "runctl",
      runId: "run-a",
      hostId: "h1",
      expiresInSeconds: 60,
    });
    const claims = decode<User>((await parseCreds(new TextEncoder().encode(minted.creds))).jwt);
    expect(claims.nats.resp).toEqual({ max: 1, ttl: 60_000_000_000 });
    expect(claims.nats.pub?.allow).toContain("runctl.host.h1.>");
  });

  it("signs with an account signing key for the account named by issuerAccount", async () => {
    const account = createAccount();
    const signingKey = createAccount();
    const minted = await mintRunCredentials({
      account: seedOf(signingKey),
      issuerAccount: account.getPublicKey(),
      prefix: "runctl",
      runId: "run-a",
      expiresInSeconds: 60,
    });
    const claims = decode<User>((await parseCreds(new TextEncoder().encode(minted.creds))).jwt);
    expect(claims.iss).toBe(signingKey.getPublicKey());
    expect(claims.nats.issuer_account).toBe(account.getPublicKey());
  });

  it("refuses anything but an account seed, saying what it got and never echoing it", async () => {
    const cases: [string, RegExp][] = [
      [seedOf(createUser()), /a seed of another kind \(SU…\)/],
      [seedOf(createOperator()), /a seed of another kind \(SO…\)/],
      [createAccount().getPublicKey(), /a public key, not a seed/],
      ["SAnot-a-seed", /something else/],
      [`${seedOf(createAccount()).slice(0, -2)}AA`, /checksum or encoding/],
    ];
    for (const [seed, reason] of cases) {
      const error = await mintRunCredentials({
        account: seed,
        prefix: "runctl",
        runId: "r",
        expiresInSeconds: 60,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, seed).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).code).toBe("nats_account_seed_invalid");
      expect((error as ConfigError).message).toMatch(reason);
      expect((error as ConfigError).message).not.toContain(seed);
    }
    expect(accountKeyPair(` ${seedOf(createAccount())}\n`).getPublicKey()).toMatch(/^A/);
  });

  it("refuses a lifetime that is not a positive whole number of seconds", async () => {
    for (const expiresInSeconds of [0, -5, 1.5, Number.POSITIVE_INFINITY]) {
      await expect(
        mintRunCredentials({
          account: seedOf(createAccount()),
          prefix: "runctl",
          runId: "r",
          expiresInSeconds,
        }),
      ).rejects.toBeInstanceOf(UserError);
    }
  });
});

describe("loadAccountSeed", () => {
  it("reads the seed inline or from an nsc .nk file, and names the fix otherwise", async () => {
    const seed = seedOf(createAccount());
    expect(await loadAccountSeed({ account_seed: ` ${seed} ` })).toBe(seed);
    const dir = await mkdtemp(join(tmpdir(), "runctl-seed-"));
    try {
      const file = join(dir, "account.nk");
      await writeFile(file, `${seed}\n`);
      expect(await loadAccountSeed({ account_seed_file: file })).toBe(seed);
      const codeOf = (config: Parameters<typeof loadAccountSeed>[0]) =>
        loadAccountSeed(config).then(
          () => "loaded",
          (e: unknown) => (e instanceof ConfigError ? e.code : String(e)),
        );
      expect(await codeOf({})).toBe("nats_account_seed_missing");
      expect(await codeOf({ account_seed: seed, account_seed_file: file })).toBe(
        "nats_account_seed_ambiguous",
      );
      expect(await codeOf({ account_seed_file: join(dir, "missing.nk") })).toBe(
        "nats_account_seed_unreadable",
      );
      await writeFile(file, `${seedOf(createUser())}\n`);
      expect(await codeOf({ account_seed_file: file })).toBe("nats_account_seed_invalid");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
