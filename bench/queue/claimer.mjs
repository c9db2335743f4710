// One bench worker: claims jobs from the server and completes each at once, until killed.
// Prints the number of jobs it completed on SIGTERM. Usage: node claimer.mjs <tracker-dist> <url> <id> <idle-ms>

import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";

const [dist, url, id, idleMs] = process.argv.slice(2);
const { QueueClient } = await import(pathToFileURL(`${dist}/mod.js`).href);
const client = new QueueClient({ url });
await client.registerWorker({ worker_id: id, hostname: "bench" });
let done = 0;
process.on("SIGTERM", () => {
  process.stdout.write(`${done}\n`);
  process.exit(0);
});
for (;;) {
  const job = await client.claimJob({ worker_id: id, lease_seconds: 60 });
  if (job === null) {
    await sleep(Number(idleMs));
    continue;
  }
  await client.completeJob(job.id, { worker_id: id, attempt: job.attempt, exit_code: 0 });
  done++;
}
