/**
 * Who may talk to the emulator. Keys are configured, never implied: a request signed with
 * anything else is refused as real S3 would refuse it, which is what lets tests prove the
 * client reports a wrong key, an expired session token or a prefix it may not touch.
 */
import { z } from "zod";

export const EmulatorCredential = z.strictObject({
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  /** When set, requests must carry it (`x-amz-security-token`), as temporary credentials do. */
  sessionToken: z.string().min(1).optional(),
  /** ISO 8601; after it every request with this key is `ExpiredToken`. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** When set, object keys (and listing prefixes) outside it are `AccessDenied`. */
  prefix: z.string().optional(),
});
export type EmulatorCredential = z.infer<typeof EmulatorCredential>;

export const EmulatorCredentials = z.array(EmulatorCredential).min(1);

export const DEFAULT_CREDENTIAL: EmulatorCredential = {
  accessKeyId: "AKIDRUNCTLEMULATOR",
  secretAccessKey: "runctl-emulator-secret",
};
