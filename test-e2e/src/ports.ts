import { createServer } from "node:net";

/**
 * A TCP port that was free on `host` a moment ago: the kernel picks it when we bind port 0, then we
 * release it so a child process (which cannot report a port it picked itself) can bind it.
 * Another process may grab it in between; callers that spawn servers retry on EADDRINUSE.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error(`could not read the port bound on ${host}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
