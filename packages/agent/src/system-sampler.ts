/**
 * System samples for `system.jsonl` (docs/run-directory.md): host CPU and
 * memory, CPU and memory of the run's processes (every process in the ranks'
 * process groups), and the GPUs the run was given — `CUDA_VISIBLE_DEVICES`, not
 * always GPU 0 — through nvidia-smi when it is installed.
 */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { findOnPath } from "./launch-command.ts";

const GIB = 1024 ** 3;

interface CpuTimes {
  busy: number;
  total: number;
}

async function hostCpu(): Promise<CpuTimes | undefined> {
  try {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

async function memory(): Promise<{ used: number; total: number } | undefined> {
  try {
    const text = await readFile("/proc/meminfo", "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0) * 1024;
    const total = kb("MemTotal");
    return { total, used: total - kb("MemAvailable") };
  } catch {
    return undefined;
  }
}

/** CPU ticks and resident bytes of every process whose process group is one of `groups`. */
async function groupUsage(groups: ReadonlySet<number>): Promise<{ ticks: number; rss: number }> {
  let ticks = 0;
  let rss = 0;
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return { ticks, rss };
  }
  const pageSize = 4096;
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (pid) => {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, "utf8");
          // The command name may contain spaces and parentheses: fields start after the last ")".
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          const pgrp = Number(fields[2]);
          if (!groups.has(pgrp)) return;
          ticks += Number(fields[11]) + Number(fields[12]);
          rss += Number(fields[21]) * pageSize;
        } catch {
          // the process exited between readdir and read
        }
      }),
  );
  return { ticks, rss };
}

export interface GpuSample {
  index: number;
  name: string;
  util: number;
  mem_used_gb: number;
  mem_total_gb: number;
  temperature_c: number;
}

/** Device indices named by CUDA_VISIBLE_DEVICES; undefined means "all". UUIDs are kept as given. */
export function visibleDevices(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return value
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

function gpus(visible: string[] | undefined): Promise<GpuSample[] | undefined> {
  // Looked up first: starting a process only to learn it is not installed costs a fork on every sample.
  if (!findOnPath("nvidia-smi", process.env)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(
      "nvidia-smi",
      [
        "--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu",
        "--format=csv,noheader,nounits",
      ],
      { timeout: 5000 },
      (error, stdout) => {
        if (error) return resolve(undefined);
        const rows = stdout
          .trim()
          .split("\n")
          .map((line) => line.split(",").map((c) => c.trim()))
          .filter((c) => c.length >= 7)
          .filter(
            ([index, uuid]) => !visible || visible.includes(index ?? "") || visible.includes(uuid ?? ""),
          )
          .map(([index, , name, util, used, total, temp]) => ({
            index: Number(index),
            name: name ?? "",
            util: Number(util),
            mem_used_gb: Number(used) / 1024,
            mem_total_gb: Number(total) / 1024,
            temperature_c: Number(temp),
          }));
        resolve(rows);
      },
    );
  });
}

const TICKS_PER_SECOND = 100;

export class SystemSampler {
  #lastHost: CpuTimes | undefined;
  #lastProc: { ticks: number; at: number } | undefined;
  readonly #groups: Set<number>;
  readonly #visible: string[] | undefined;
  #hasGpu = true;

  constructor(groups: Iterable<number>, cudaVisibleDevices: string | undefined) {
    this.#groups = new Set(groups);
    this.#visible = visibleDevices(cudaVisibleDevices);
  }

  async sample(now = new Date()): Promise<Record<string, unknown>> {
    const [host, mem, usage, gpuRows] = await Promise.all([
      hostCpu(),
      memory(),
      groupUsage(this.#groups),
      this.#hasGpu ? gpus(this.#visible) : Promise.resolve(undefined),
    ]);
    if (gpuRows === undefined) this.#hasGpu = false;
    const record: Record<string, unknown> = { _timestamp: now.toISOString() };
    if (host && this.#lastHost && host.total > this.#lastHost.total) {
      record.cpu_percent = round(
        (100 * (host.busy - this.#lastHost.busy)) / (host.total - this.#lastHost.total),
      );
    }
    this.#lastHost = host;
    if (mem) {
      record.memory_used_gb = round(mem.used / GIB);
      record.memory_total_gb = round(mem.total / GIB);
    }
    const at = now.getTime();
    if (this.#lastProc && at > this.#lastProc.at) {
      const seconds = (at - this.#lastProc.at) / 1000;
      record.proc_cpu_percent = round(
        (100 * (usage.ticks - this.#lastProc.ticks)) / TICKS_PER_SECOND / seconds,
      );
    }
    this.#lastProc = { ticks: usage.ticks, at };
    record.proc_rss_gb = round(usage.rss / GIB);
    if (gpuRows && gpuRows.length > 0) record.gpus = gpuRows;
    return record;
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
