/**
 * Tags runctl puts on every cloud resource it creates. They are the only thing
 * that scopes destructive actions: a resource without `CreatedBy=runctl` is never
 * stopped or terminated by bulk commands, and `runctl:protected=true` is honoured
 * even when it has. Names follow the Rust runctl so existing fleets stay visible.
 */
import { z } from "zod";

export const TAG_CREATED_BY = "CreatedBy";
export const TAG_CREATED_BY_VALUE = "runctl";
export const TAG_PROJECT = "runctl:project";
export const TAG_USER = "runctl:user";
export const TAG_CREATED = "runctl:created";
export const TAG_PROTECTED = "runctl:protected";
export const TAG_RUN_ID = "runctl:run-id";
/** The agent host on the machine (its host spec's `hostId`): names its inbox and its record in the store. */
export const TAG_HOST = "runctl:host";

export const Tags = z.record(z.string(), z.string());
export type Tags = z.infer<typeof Tags>;

export interface RunctlTagInput {
  project?: string | undefined;
  user?: string | undefined;
  runId?: string | undefined;
  now?: Date;
}

/** The tags every resource runctl launches must carry. */
export function runctlTags(input: RunctlTagInput): Tags {
  const tags: Tags = {
    [TAG_CREATED_BY]: TAG_CREATED_BY_VALUE,
    [TAG_CREATED]: (input.now ?? new Date()).toISOString(),
  };
  if (input.project) tags[TAG_PROJECT] = input.project;
  if (input.user) tags[TAG_USER] = input.user;
  if (input.runId) tags[TAG_RUN_ID] = input.runId;
  return tags;
}

export function isRunctlManaged(tags: Tags): boolean {
  return tags[TAG_CREATED_BY] === TAG_CREATED_BY_VALUE;
}

export function isProtected(tags: Tags): boolean {
  const value = tags[TAG_PROTECTED]?.toLowerCase();
  return value === "true" || value === "1" || value === "yes";
}
