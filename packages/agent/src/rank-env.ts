/**
 * torchrun-compatible environment for each rank of a single-node job, so a
 * script written for `torchrun --nproc-per-node N` runs unchanged.
 */
import { createServer } from "node:net";

export interface RankLayout {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
}

export function rankEnv(layout: RankLayout): Record<string, string> {
  return {
    RANK: String(layout.rank),
    LOCAL_RANK: String(layout.rank),
    WORLD_SIZE: String(layout.worldSize),
    LOCAL_WORLD_SIZE: String(layout.worldSize),
    GROUP_RANK: "0",
    ROLE_RANK: String(layout.rank),
    ROLE_WORLD_SIZE: String(layout.worldSize),
    MASTER_ADDR: layout.masterAddr,
    MASTER_PORT: String(layout.masterPort),
  };
}

/** A port the OS reports free right now; the ranks' rendezvous binds it moments later. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
