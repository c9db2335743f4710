/** This repository's npm workspaces, as npm lists them. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface WorkspaceInfo {
  name: string;
  version: string;
  private: boolean;
  dir: string;
}

export function publishedWorkspaces(): Promise<WorkspaceInfo[]> {
  return new Promise((resolve, reject) => {
    execFile(
      "npm",
      ["query", ".workspace", "--json"],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout) => {
        if (error) return reject(error);
        const listed = JSON.parse(stdout) as {
          name: string;
          version: string;
          private?: boolean;
          location: string;
        }[];
        resolve(
          listed.map((w) => ({
            name: w.name,
            version: w.version,
            private: w.private === true,
            dir: join(ROOT, w.location),
          })),
        );
      },
    );
  });
}
