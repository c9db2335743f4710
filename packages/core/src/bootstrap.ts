/**
 * The bootstrap: the POSIX `sh` script a provider hands a fresh machine (EC2 user-data, a
 * RunPod container argument) to start the runctl agent there. It needs only `sh`, `curl` or
 * `wget`, `tar` (gzip) and `sha256sum` besides the basic file tools every image has, and it
 * must fit EC2's 16 KiB user-data limit. What it does, in order (docs/remote-runs.md):
 *
 * 1. takes a lock under `$RUNCTL_HOME` and leaves at once when an agent is already supervised
 *    there (cloud-init re-runs, a restarted pod: one agent);
 * 2. uses a Node of the pinned major (at `$RUNCTL_HOME/node` or on PATH), else downloads the
 *    official build for the CPU from the mirror and checks it against the pinned or the
 *    published checksum;
 * 3. fetches the agent artifact and the code bundle by short-lived URLs, verifies their sha256
 *    and keeps them content-addressed;
 * 4. writes the host spec to `$RUNCTL_HOME/host.json` (mode 600);
 * 5. starts the agent under a systemd unit (systemd running, root) or a supervising loop.
 *
 * A fatal failure (no downloader, a failed download, a checksum mismatch, an unsupported CPU)
 * is reported through the presigned POST (`bootstrap-error.json` under its prefix) and shuts
 * the machine down. Every interpolated value is single-quoted; URLs are logged without their
 * query string, which holds the signatures.
 */
import { Buffer } from "node:buffer";
import { z } from "zod";
import { PresignedPost } from "./artifacts.ts";
import { UserError } from "./errors.ts";
import { MAX_BOOTSTRAP_BYTES } from "./provider.ts";

/** Where the bootstrap keeps everything on the machine unless `RUNCTL_HOME` says otherwise. */
export const DEFAULT_RUNCTL_HOME = "/var/lib/runctl";
/** The failure report's file name, under the report POST policy's key prefix. */
export const BOOTSTRAP_ERROR_FILE = "bootstrap-error.json";
/** The systemd unit the bootstrap installs where systemd runs and it is root. */
export const AGENT_UNIT = "runctl-agent.service";

/** The key a failed bootstrap writes its report to, for a POST policy's `keyPrefix`. */
export function bootstrapErrorKey(keyPrefix: string): string {
  return `${keyPrefix}${keyPrefix === "" || keyPrefix.endsWith("/") ? "" : "/"}${BOOTSTRAP_ERROR_FILE}`;
}

/** Why a bootstrap gave up (the `code` of its report). */
export const BootstrapFailureCode = z.enum([
  /** Neither curl nor wget. */
  "no_downloader",
  /** `uname -m` names a CPU the official Node builds do not cover. */
  "unsupported_arch",
  "download_failed",
  /** A download did not match its sha256: a tampered or truncated artifact. */
  "checksum_mismatch",
  /** The Node build, once extracted, does not run or is not the pinned major. */
  "node_unusable",
  "extract_failed",
  /** `RUNCTL_HOME` is not an absolute path of plain characters, or cannot be written. */
  "bad_home",
  "start_failed",
]);
export type BootstrapFailureCode = z.infer<typeof BootstrapFailureCode>;

/** What a failed bootstrap uploads to `bootstrapErrorKey(prefix)`. */
export const BootstrapReport = z
  .object({
    v: z.literal(1),
    status: z.literal("failed"),
    code: BootstrapFailureCode,
    reason: z.string(),
    /** ISO 8601, the machine's clock. */
    at: z.string(),
  })
  .strict();
export type BootstrapReport = z.infer<typeof BootstrapReport>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lower-case hex digits");
// Normalised (quotes and spaces percent-encoded): the report quotes URLs inside JSON.
const HttpUrl = z.url({ protocol: /^https?$/, error: "an http(s) URL" }).transform((u) => new URL(u).href);
const Download = z.object({ url: HttpUrl, sha256: Sha256 }).strict();
/** Form field names the multipart body can carry as they are. */
const FieldName = z.string().regex(/^[A-Za-z0-9_.-]+$/);
/** No CR/LF: a value is one line of a multipart part. */
const FieldValue = z.string().regex(/^[^\r\n]*$/);

export const BootstrapInput = z
  .object({
    node: z
      .object({
        /** The full pinned version (`24.11.1`); any Node of its major is used when present. */
        version: z.string().regex(/^\d+\.\d+\.\d+$/, "a full Node version such as 24.11.1"),
        /** Base URL of the official layout: `<mirror>/v<version>/node-v<version>-linux-<arch>.tar.gz`. */
        mirror: HttpUrl.default("https://nodejs.org/dist"),
        /** Pinned checksums of the tarballs; without one the mirror's SHASUMS256.txt is used. */
        sha256: z
          .object({ "linux-x64": Sha256.optional(), "linux-arm64": Sha256.optional() })
          .strict()
          .optional(),
      })
      .strict(),
    /** The agent artifact (`@runctl/agent`'s `agentArtifact()`), by a short-lived URL. */
    agent: Download,
    /** A code bundle archive (sha256 of the archive file), extracted to `$RUNCTL_HOME/code/<sha256>/`. */
    code: Download.optional(),
    /**
     * The script's body (`bootstrapBody()`, the same text on every launch) by URL instead of
     * inline: user-data then holds only what differs per launch and a few lines that fetch the
     * body, check its sha256 and run it. For host specs too large to fit beside the body.
     */
    body: Download.optional(),
    /** What the agent's host mode reads, written to `$RUNCTL_HOME/host.json`; opaque here. */
    hostSpec: z.record(z.string(), z.unknown()),
    /** Default `/var/lib/runctl`; `RUNCTL_HOME` in the machine's environment wins. */
    home: z
      .string()
      .regex(/^\/[A-Za-z0-9_./-]*$/, "an absolute path of letters, digits and _ . / -")
      .default(DEFAULT_RUNCTL_HOME),
    /** Where a fatal failure is reported: a POST policy and the key to write (default `bootstrapErrorKey`). */
    report: z
      .object({
        post: PresignedPost.extend({ fields: z.record(FieldName, FieldValue) }),
        key: FieldValue.optional(),
      })
      .strict()
      .refine((r) => r.key === undefined || r.key.startsWith(r.post.keyPrefix), {
        message: "the report key must start with the POST policy's keyPrefix",
      })
      .optional(),
    /**
     * Run the supervising loop in the foreground instead of returning: for a container whose
     * command is the bootstrap (RunPod), which ends when its command does.
     */
    foreground: z.boolean().default(false),
  })
  .strict();
export type BootstrapInput = z.input<typeof BootstrapInput>;

/** Single-quotes `value` for sh: nothing inside is expanded. */
export function shQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The supervising loop, written to `$RUNCTL_HOME/runctl-supervise.sh` where systemd does not
 * run. Its pid file stays when it ends: a bootstrap checks that the pid still runs this script. Values come from its environment (RUNCTL_HOME, RUNCTL_NODE, RUNCTL_AGENT), so the
 * script is the same text on every machine. Exit 0 from the agent means done; a failure is
 * retried with a doubling delay, and five failures within 60 s end the loop.
 */
const SUPERVISOR = `#!/bin/sh
H=$RUNCTL_HOME
echo $$ >"$H/supervisor.pid"
l() { echo "runctl-supervise $(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
stop() {
  l "stopping (signal)"; r=143
  if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null; wait "$p"; r=$?; fi
  exit $r
}
trap stop TERM INT HUP
n=0; d=1; t=$(date +%s); p=
while :; do
  l "starting the agent"
  (cd "$H" && exec "$RUNCTL_NODE" "$RUNCTL_AGENT" host "$H/host.json") &
  p=$!; echo $p >"$H/agent.pid"
  wait $p; r=$?; p=
  if [ $r -eq 0 ]; then l "the agent finished"; exit 0; fi
  s=$(date +%s)
  if [ $((s - t)) -gt 60 ]; then n=0; d=1; t=$s; fi
  n=$((n + 1))
  if [ $n -ge 5 ]; then l "the agent failed $n times within 60 s (last exit $r): giving up"; exit 1; fi
  l "the agent exited $r: restart in $d s"
  sleep $d
  d=$((d * 2)); [ $d -gt 30 ] && d=30
done
`;

const SCRIPT = String.raw`
umask 077
H=${"$"}{RUNCTL_HOME:-$DEFAULT_HOME}
case $H in /*) ;; *) H=;; esac
case $H in *[!A-Za-z0-9_./-]*) H=;; esac
if [ -z "$H" ] || ! mkdir -p "$H/tmp" "$H/agent" "$H/code"; then
  echo "runctl-bootstrap: RUNCTL_HOME must be an absolute, writable path of letters, digits and _ . / -" >&2
  H=/tmp/runctl-bootstrap-$$; mkdir -p "$H/tmp"; BADHOME=1
fi
export RUNCTL_HOME="$H"
exec >>"$H/bootstrap.log" 2>&1
T=$H/tmp
log() { echo "runctl-bootstrap $(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
unlock() { [ -n "$LOCKED" ] && rm -rf "$H/bootstrap.lock"; LOCKED=; }
part() { printf -- '--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' "$B" "$1" "$2"; }
report() {
  [ -n "$REPORT_URL" ] || return 0
  B=runctl-form-$$; f=$T/report.$$
  { report_fields
    printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="${BOOTSTRAP_ERROR_FILE}"\r\nContent-Type: application/json\r\n\r\n' "$B"
    printf '{"v":1,"status":"failed","code":"%s","reason":"%s","at":"%s"}\r\n--%s--\r\n' "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$B"
  } >"$f"
  h="Content-Type: multipart/form-data; boundary=$B"
  if have curl; then curl -fsS --max-time 60 -o /dev/null -H "$h" --data-binary "@$f" "$REPORT_URL"
  elif have wget; then wget -q -O /dev/null --header="$h" --post-file="$f" "$REPORT_URL"
  else false; fi && log "failure reported to ${"$"}{REPORT_URL%%\?*}" || log "could not upload the failure report"
  rm -f "$f"
}
halt_machine() {
  log "shutting the machine down"
  shutdown -h now || poweroff || halt || log "could not shut the machine down"
}
fail() {
  log "FATAL $1: $2"
  report "$1" "$2"
  unlock
  rm -rf "$T"
  halt_machine
  exit 1
}
[ -n "$BADHOME" ] && fail bad_home "RUNCTL_HOME is not an absolute writable path of plain characters"
# Downloads $1 to $2; logs the URL without its query (the signature). No wget -T: busybox
# 1.35's wget crashes with it.
fetch() {
  log "download ${"$"}{1%%\?*}"
  if have curl; then curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"
  elif have wget; then wget -q -O "$2" "$1"
  else fail no_downloader "neither curl nor wget is installed"; fi || { rm -f "$2"; fail download_failed "could not download ${"$"}{1%%\?*}"; }
}
sha() { s=$(sha256sum "$1") || return 1; echo "${"$"}{s%% *}"; }
# Fails unless file $1 has sha256 $2; $3 names it.
verify() {
  got=$(sha "$1")
  [ "$got" = "$2" ] || { rm -f "$1"; fail checksum_mismatch "$3: sha256 $got, expected $2"; }
}
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/cmdline" ] || return 0
  case $(cat "/proc/$1/cmdline" 2>/dev/null) in *$2*) return 0;; esac
  return 1
}
have sha256sum || fail no_downloader "sha256sum is not installed"
have curl || have wget || fail no_downloader "neither curl nor wget is installed"

# A process's start time (/proc/PID/stat field 22): with the pid it names one process, also
# after a restarted container reuses pids.
started() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${"$"}{s##*) }; set -- $s; echo "${"$"}{20}"; }
# One bootstrap at a time; a lock left by a dead one is taken over (one without a pid after
# 5 s: its owner died between taking it and writing its pid).
e=0
while ! mkdir "$H/bootstrap.lock" 2>/dev/null; do
  read -r lp lt <"$H/bootstrap.lock/pid" 2>/dev/null || { lp=; lt=; }
  if [ -z "$lp" ]; then
    e=$((e + 1)); [ $e -gt 5 ] && rm -rf "$H/bootstrap.lock"; sleep 1; continue
  fi
  if ! kill -0 "$lp" 2>/dev/null || { [ -n "$lt" ] && [ "$(started "$lp")" != "$lt" ]; }; then
    rm -rf "$H/bootstrap.lock"; continue
  fi
  log "waiting for another bootstrap (pid $lp)"
  sleep 1
done
LOCKED=1; echo "$$ $(started $$)" >"$H/bootstrap.lock/pid"
log "start (home $H)"

SYSTEMD=
[ "$RUNCTL_SUPERVISOR" != loop ] && [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] && have systemctl && SYSTEMD=1
if [ -n "$SYSTEMD" ] && systemctl is-active --quiet ${AGENT_UNIT}; then
  log "${AGENT_UNIT} is already active: nothing to do"; unlock; exit 0
fi
if [ -z "$SYSTEMD" ] && alive "$(cat "$H/supervisor.pid" 2>/dev/null)" runctl-supervise; then
  log "an agent is already supervised (pid $(cat "$H/supervisor.pid")): nothing to do"; unlock; exit 0
fi

# Node: the pinned major at home or on PATH, else the official build for this CPU.
M=${"$"}{NODE_VERSION%%.*}
node_ok() {
  v=$("$1" --version 2>/dev/null) || return 1
  v=${"$"}{v#v}; [ "${"$"}{v%%.*}" = "$M" ]
}
NODE=
if node_ok "$H/node/bin/node"; then NODE=$H/node/bin/node
else
  n=$(command -v node 2>/dev/null)
  if [ -n "$n" ] && node_ok "$n"; then mkdir -p "$H/bin"; ln -sf "$n" "$H/bin/node"; NODE=$H/bin/node; fi
fi
if [ -z "$NODE" ]; then
  m=$(uname -m)
  case $m in
    x86_64|amd64) A=x64; NS=$NODE_SHA_X64;;
    aarch64|arm64) A=arm64; NS=$NODE_SHA_ARM64;;
    *) case $m in *[!A-Za-z0-9_.-]*) m=unknown;; esac
       fail unsupported_arch "no official Node build for CPU $m (x86_64 and aarch64 are supported)";;
  esac
  N=node-v$NODE_VERSION-linux-$A
  fetch "$NODE_MIRROR/v$NODE_VERSION/$N.tar.gz" "$T/$N.tar.gz"
  if [ -z "$NS" ]; then
    fetch "$NODE_MIRROR/v$NODE_VERSION/SHASUMS256.txt" "$T/SHASUMS256.txt"
    while read -r s f; do [ "$f" = "$N.tar.gz" ] && NS=$s; done <"$T/SHASUMS256.txt"
    [ -n "$NS" ] || fail checksum_mismatch "SHASUMS256.txt lists no $N.tar.gz"
  fi
  verify "$T/$N.tar.gz" "$NS" "$N.tar.gz"
  rm -rf "$H/node" "$T/node"; mkdir -p "$T/node"
  tar -xzf "$T/$N.tar.gz" -C "$T/node" && mv "$T/node/$N" "$H/node" || fail extract_failed "could not extract $N.tar.gz"
  rm -rf "$T/node" "$T/$N.tar.gz" "$T/SHASUMS256.txt"
  node_ok "$H/node/bin/node" || fail node_unusable "$N does not run here or is not Node $M"
  NODE=$H/node/bin/node
fi
log "node $("$NODE" --version) at $NODE"

# The agent, content-addressed.
AG=$H/agent/$AGENT_SHA.mjs
if [ -f "$AG" ] && [ "$(sha "$AG")" = "$AGENT_SHA" ]; then log "agent $AGENT_SHA already here"
else
  fetch "$AGENT_URL" "$T/agent.$$"
  verify "$T/agent.$$" "$AGENT_SHA" "agent artifact"
  mv "$T/agent.$$" "$AG"
fi

# The code bundle, extracted once.
CD=
if [ -n "$CODE_SHA" ]; then
  CD=$H/code/$CODE_SHA
  if [ -d "$CD" ]; then log "code $CODE_SHA already extracted"
  else
    fetch "$CODE_URL" "$T/code.$$"
    verify "$T/code.$$" "$CODE_SHA" "code bundle"
    rm -rf "$T/code"; mkdir -p "$T/code"
    tar -xzf "$T/code.$$" -C "$T/code" && mv "$T/code" "$CD" || fail extract_failed "could not extract the code bundle"
    rm -f "$T/code.$$"
  fi
fi

rm -f "$H/host.json"
host_json >"$H/host.json" || fail bad_home "could not write $H/host.json"
chmod 600 "$H/host.json"

if [ -n "$SYSTEMD" ]; then
  u=/etc/systemd/system/${AGENT_UNIT}
  { printf '%s\n' '[Unit]' 'Description=runctl agent' 'Wants=network-online.target' 'After=network-online.target' \
      'StartLimitIntervalSec=60' 'StartLimitBurst=5' '[Service]' "WorkingDirectory=$H" "Environment=RUNCTL_HOME=$H"
    [ -n "$CD" ] && echo "Environment=RUNCTL_CODE_DIR=$CD"
    printf '%s\n' "ExecStart=$NODE $AG host $H/host.json" 'Restart=on-failure' 'RestartSec=5' \
      "StandardOutput=append:$H/agent.log" "StandardError=append:$H/agent.log" '[Install]' 'WantedBy=multi-user.target'
  } >"$u" && chmod 644 "$u" && systemctl daemon-reload && systemctl enable --now ${AGENT_UNIT} ||
    fail start_failed "could not start ${AGENT_UNIT}"
  log "agent started by systemd (${AGENT_UNIT})"; unlock; exit 0
fi

printf '%s' $SUPERVISOR >"$H/runctl-supervise.sh"
export RUNCTL_NODE="$NODE" RUNCTL_AGENT="$AG"
[ -n "$CD" ] && export RUNCTL_CODE_DIR="$CD"
rm -rf "$T"
if [ -n "$FOREGROUND" ]; then
  log "supervising the agent in the foreground"; unlock
  exec sh "$H/runctl-supervise.sh" >>"$H/agent.log" 2>&1 </dev/null
fi
rm -f "$H/supervisor.pid"
if have setsid; then setsid sh "$H/runctl-supervise.sh" >>"$H/agent.log" 2>&1 </dev/null &
else nohup sh "$H/runctl-supervise.sh" >>"$H/agent.log" 2>&1 </dev/null &
fi
# The loop writes its own pid (and leaves it: a dead pid is no agent); hold the lock until it
# has, so a second bootstrap sees it.
i=0
while [ ! -s "$H/supervisor.pid" ] && [ $i -lt 300 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done
[ -s "$H/supervisor.pid" ] || fail start_failed "the supervising loop did not start"
log "agent supervised by pid $(cat "$H/supervisor.pid")"; unlock
exit 0
`;

/** Drops comment lines and indentation: the script's bytes count against 16 KiB. */
function compact(script: string): string {
  return script
    .split("\n")
    .map((line) => line.trimStart())
    .filter((line) => line !== "" && !line.startsWith("# "))
    .join("\n");
}

/** The body of every bootstrap: the same text on every launch, inline or fetched by `body`. */
export function bootstrapBody(): string {
  return compact(SCRIPT).replace("$SUPERVISOR", () => shQuote(SUPERVISOR));
}

/**
 * The lines that take the body's place in user-data when it comes by URL: fetch it, check its
 * sha256, run it in this shell (it uses the variables and functions above). Their messages go
 * to the console: the body sets up bootstrap.log and the failure report.
 */
function fetchBody(body: { url: string; sha256: string }): string {
  return compact(String.raw`
    BODY_URL=${shQuote(body.url)}; F=$(mktemp) || F=/tmp/runctl-bootstrap-$$
    if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 --connect-timeout 20 -o "$F" "$BODY_URL"
    else wget -q -O "$F" "$BODY_URL"; fi || { echo "runctl-bootstrap: could not download the bootstrap body" >&2; exit 1; }
    S=$(sha256sum "$F") && [ "${"$"}{S%% *}" = ${shQuote(body.sha256)} ] || { echo "runctl-bootstrap: the bootstrap body's sha256 is not ${body.sha256}" >&2; exit 1; }
    . "$F"
  `);
}

/**
 * The bootstrap script for `input` (validated here). Throws `bootstrap_too_large` when it would
 * not fit `MAX_BOOTSTRAP_BYTES` (EC2's user-data limit), which a large host spec can cause.
 */
export function buildBootstrap(input: BootstrapInput): string {
  const parsed = BootstrapInput.safeParse(input);
  if (!parsed.success) {
    throw new UserError(`Invalid bootstrap input: ${parsed.error.issues.map(issueText).join("; ")}`, {
      code: "bootstrap_invalid",
      hint: "Pass a full Node version, http(s) URLs and 64-hex sha256 values for the agent and the code bundle.",
    });
  }
  const spec = parsed.data;
  const report = spec.report;
  const reportFields = report
    ? [
        ...Object.entries(report.post.fields).filter(([name]) => name.toLowerCase() !== "key"),
        ["key", report.key ?? bootstrapErrorKey(report.post.keyPrefix)] as const,
      ]
    : [];
  const vars: Array<[string, string]> = [
    ["DEFAULT_HOME", spec.home],
    ["NODE_VERSION", spec.node.version],
    ["NODE_MIRROR", spec.node.mirror.replace(/\/+$/, "")],
    ["NODE_SHA_X64", spec.node.sha256?.["linux-x64"] ?? ""],
    ["NODE_SHA_ARM64", spec.node.sha256?.["linux-arm64"] ?? ""],
    ["AGENT_URL", spec.agent.url],
    ["AGENT_SHA", spec.agent.sha256],
    ["CODE_URL", spec.code?.url ?? ""],
    ["CODE_SHA", spec.code?.sha256 ?? ""],
    ["REPORT_URL", report?.post.url ?? ""],
    ["FOREGROUND", spec.foreground ? "1" : ""],
  ];
  const head = [
    "#!/bin/sh",
    "# runctl bootstrap: starts the runctl agent on this machine; log in $RUNCTL_HOME/bootstrap.log",
    ...vars.map(([name, value]) => `${name}=${shQuote(value)}`),
    "BADHOME=; LOCKED=; B=",
    `host_json() { printf '%s\\n' ${shQuote(JSON.stringify(spec.hostSpec))}; }`,
    `report_fields() { :${reportFields.map(([name, value]) => `; part ${shQuote(name)} ${shQuote(value)}`).join("")}; }`,
  ];
  const script = `${head.join("\n")}\n${spec.body ? fetchBody(spec.body) : bootstrapBody()}\n`;
  const bytes = Buffer.byteLength(script);
  if (bytes > MAX_BOOTSTRAP_BYTES) {
    throw new UserError(
      `The bootstrap is ${bytes} bytes, over the ${MAX_BOOTSTRAP_BYTES}-byte user-data limit`,
      {
        code: "bootstrap_too_large",
        hint: spec.body
          ? "Make the host spec smaller: pass large values (run specs, credentials files) by presigned URL instead of inline."
          : "Pass the script's body by URL (`body`: bootstrapBody() in the store), or make the host spec smaller.",
        details: { bytes, limit: MAX_BOOTSTRAP_BYTES },
      },
    );
  }
  return script;
}

function issueText(issue: z.core.$ZodIssue): string {
  return issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
}
