/**
 * The control channel a run listens on, as recorded in its `meta.json`
 * (`control`, docs/run-directory.md), so `runctl ctl` talks to that channel
 * rather than to whatever its own configuration says. Never credentials:
 * only the kind, the subject prefix and the server URL(s) without userinfo.
 */
import type { RunControlChannel } from "@runctl/core";
import { DEFAULT_NATS_URL, natsUrlWithoutCredentials } from "./nats/connect.ts";
import { type NatsSettings, resolveNatsSettings } from "./nats/settings.ts";
import { DEFAULT_PREFIX } from "./nats/subjects.ts";

/** `{kind: "file"}` without NATS, else `{kind: "nats", prefix, url}` (URL without credentials). */
export function controlChannelMeta(nats: NatsSettings | undefined): RunControlChannel {
  if (nats === undefined) return { kind: "file" };
  let url = nats.url;
  let prefix = nats.prefix;
  try {
    // A context may hold the URL; an unreadable one is reported when connecting, not here.
    const resolved = resolveNatsSettings(nats);
    url = resolved.url;
    prefix = resolved.prefix;
  } catch {}
  let safeUrl: string;
  try {
    safeUrl = natsUrlWithoutCredentials(url ?? DEFAULT_NATS_URL);
  } catch {
    safeUrl = "";
  }
  return { kind: "nats", prefix: prefix ?? DEFAULT_PREFIX, ...(safeUrl === "" ? {} : { url: safeUrl }) };
}
