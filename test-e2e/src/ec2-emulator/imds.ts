/**
 * An instance's metadata service, IMDSv2 as EC2 serves it at 169.254.169.254: a session token
 * from `PUT /latest/api/token` (TTL 1–21600 s in `X-aws-ec2-metadata-token-ttl-seconds`), then
 * GETs carrying `X-aws-ec2-metadata-token`. With `HttpTokens=required` a GET without a valid
 * token is 401. `spot/instance-action` is 404 until the instance gets an interruption notice.
 * Each instance has its own endpoint (clients find it through AWS_EC2_METADATA_SERVICE_ENDPOINT),
 * since every virtual machine shares loopback and IMDS cannot tell callers apart otherwise.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ImdsView {
  instanceId: string;
  instanceType: string;
  imageId: string;
  zone: string;
  region: string;
  privateIp: string;
  lifecycle: "spot" | "on-demand";
  httpTokens: "optional" | "required";
  /** Base64 as given to RunInstances; undefined without user-data. */
  userData: string | undefined;
  tags: ReadonlyMap<string, string>;
  instanceMetadataTags: boolean;
  instanceAction: { action: "terminate" | "stop" | "hibernate"; time: string } | undefined;
  launchTime: Date;
}

export interface Imds {
  endpoint: string;
  close(): Promise<void>;
}

const MAX_TTL = 21_600;

export async function startImds(view: () => ImdsView, now: () => number = Date.now): Promise<Imds> {
  const tokens = new Map<string, number>();
  const answer = (req: IncomingMessage, res: ServerResponse): [number, string] => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.headers["x-forwarded-for"] !== undefined) return [403, "Forbidden"];
    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return [405, "Method Not Allowed"];
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL) return [400, "Bad Request"];
      const token = randomBytes(32).toString("base64url");
      tokens.set(token, now() + ttl * 1000);
      res.setHeader("X-aws-ec2-metadata-token-ttl-seconds", String(ttl));
      return [200, token];
    }
    if (req.method !== "GET" && req.method !== "HEAD") return [405, "Method Not Allowed"];
    const v = view();
    const token = req.headers["x-aws-ec2-metadata-token"];
    if (token !== undefined) {
      const expires = typeof token === "string" ? tokens.get(token) : undefined;
      if (expires === undefined || expires <= now()) return [401, "Unauthorized"];
    } else if (v.httpTokens === "required") {
      return [401, "Unauthorized"];
    }
    const body = document(v, path);
    return body === undefined ? [404, "Not Found"] : [200, body];
  };
  const server = createServer((req, res) => {
    let status: number;
    let body: string;
    try {
      [status, body] = answer(req, res);
    } catch {
      [status, body] = [500, "Internal Server Error"];
    }
    res.statusCode = status;
    res.setHeader("Content-Type", "text/plain");
    res.setHeader("Server", "EC2ws");
    res.end(body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function document(v: ImdsView, path: string): string | undefined {
  const md = "/latest/meta-data/";
  switch (path) {
    case "/latest/user-data":
      return v.userData === undefined ? undefined : Buffer.from(v.userData, "base64").toString("utf8");
    case "/latest/dynamic/instance-identity/document":
      return JSON.stringify(
        {
          accountId: "123456789012",
          architecture: "x86_64",
          availabilityZone: v.zone,
          imageId: v.imageId,
          instanceId: v.instanceId,
          instanceType: v.instanceType,
          pendingTime: v.launchTime.toISOString().replace(/\.\d{3}Z$/, "Z"),
          privateIp: v.privateIp,
          region: v.region,
          version: "2017-09-30",
        },
        null,
        2,
      );
    case md:
    case "/latest/meta-data":
      return [
        "ami-id",
        "instance-id",
        "instance-life-cycle",
        "instance-type",
        "local-ipv4",
        "placement/",
        ...(v.instanceAction ? ["spot/"] : []),
        ...(v.instanceMetadataTags ? ["tags/"] : []),
      ].join("\n");
    case `${md}ami-id`:
      return v.imageId;
    case `${md}instance-id`:
      return v.instanceId;
    case `${md}instance-type`:
      return v.instanceType;
    case `${md}instance-life-cycle`:
      return v.lifecycle;
    case `${md}local-ipv4`:
      return v.privateIp;
    case `${md}placement/`:
      return "availability-zone\nregion";
    case `${md}placement/availability-zone`:
      return v.zone;
    case `${md}placement/region`:
      return v.region;
    case `${md}spot/instance-action`:
      return v.instanceAction ? JSON.stringify(v.instanceAction) : undefined;
    case `${md}spot/termination-time`:
      return v.instanceAction?.action === "terminate" ? v.instanceAction.time : undefined;
    case `${md}tags/instance`:
      return v.instanceMetadataTags ? [...v.tags.keys()].join("\n") : undefined;
  }
  if (v.instanceMetadataTags && path.startsWith(`${md}tags/instance/`)) {
    return v.tags.get(decodeURIComponent(path.slice(`${md}tags/instance/`.length)));
  }
  return undefined;
}
