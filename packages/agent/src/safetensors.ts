/**
 * The header of a safetensors file, read without touching the tensor data:
 * an 8-byte little-endian u64 length, then that many bytes of JSON mapping
 * tensor names to `{dtype, shape, data_offsets}` plus an optional
 * `__metadata__` of strings (https://github.com/huggingface/safetensors).
 *
 * The file is untrusted (downloaded, half-written, truncated by a full disk),
 * so the length is bounded before anything is allocated and the offsets are
 * checked against the real file size: a truncated file is reported as
 * corrupt instead of looking healthy.
 */
import { open } from "node:fs/promises";
import { parseAt, UserError } from "@runctl/core";
import { z } from "zod";

/** Larger headers are refused before allocation; the reference implementation's limit is 100 MB. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

const LENGTH_PREFIX_BYTES = 8;
const METADATA_KEY = "__metadata__";

export const SafetensorsTensor = z.strictObject({
  dtype: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
export type SafetensorsTensor = z.infer<typeof SafetensorsTensor>;

const SafetensorsHeaderJson = z.record(z.string(), z.unknown());
const TensorTable = z.record(z.string(), SafetensorsTensor);
const Metadata = z.record(z.string(), z.string());

export const SafetensorsSummary = z.object({
  /** Bytes of JSON header (without the 8-byte length prefix). */
  headerBytes: z.number().int().nonnegative(),
  tensorCount: z.number().int().nonnegative(),
  /** Tensors per dtype, e.g. `{"F32": 10, "BF16": 2}`. */
  dtypes: z.record(z.string(), z.number().int().nonnegative()),
  /** Sum over tensors of the product of their shapes (a scalar counts 1). */
  parameterCount: z.number().int().nonnegative(),
  metadata: z.record(z.string(), z.string()).nullable(),
});
export type SafetensorsSummary = z.infer<typeof SafetensorsSummary>;

export interface SafetensorsHeader {
  headerBytes: number;
  tensors: Record<string, SafetensorsTensor>;
  metadata: Record<string, string> | null;
}

// Bits per element; dtypes not listed here skip the size check rather than fail,
// so a newer dtype does not make a healthy file look corrupt.
const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E4M3: 8,
  F8_E5M2: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  I64: 64,
  U64: 64,
  F64: 64,
};

function corrupt(path: string, reason: string, details: Record<string, unknown> = {}): UserError {
  return new UserError(`${path} is not a valid safetensors file: ${reason}`, {
    code: "checkpoint_corrupt",
    hint: "The file is truncated or damaged; if a run is still writing it, wait for the save to finish, otherwise restore it from a copy or pick an older checkpoint (`runctl checkpoint list`).",
    details: { path, ...details },
  });
}

/** Reads and validates the header of the safetensors file at `path`; never reads tensor data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await open(path, "r");
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < LENGTH_PREFIX_BYTES) {
      throw corrupt(path, `${fileSize} bytes is shorter than the 8-byte header length`, { fileSize });
    }
    const prefix = Buffer.alloc(LENGTH_PREFIX_BYTES);
    await handle.read(prefix, 0, LENGTH_PREFIX_BYTES, 0);
    const claimed = prefix.readBigUInt64LE(0);
    if (claimed > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
      throw corrupt(path, `header length ${claimed} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`, {
        headerBytes: claimed.toString(),
      });
    }
    const headerBytes = Number(claimed);
    if (LENGTH_PREFIX_BYTES + headerBytes > fileSize) {
      throw corrupt(path, `header claims ${headerBytes} bytes but the file has ${fileSize}`, {
        headerBytes,
        fileSize,
      });
    }
    const raw = Buffer.alloc(headerBytes);
    const { bytesRead } = await handle.read(raw, 0, headerBytes, LENGTH_PREFIX_BYTES);
    if (bytesRead !== headerBytes) throw corrupt(path, "the file shrank while it was read");
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch (error) {
      throw corrupt(path, `header is not UTF-8 JSON (${(error as Error).message})`);
    }
    const context = {
      what: `safetensors header of ${path}`,
      kind: "user" as const,
      code: "checkpoint_corrupt",
      hint: "The header does not follow the safetensors format; the file is damaged or was written by a broken tool.",
    };
    const { [METADATA_KEY]: rawMetadata, ...rawTensors } = parseAt(SafetensorsHeaderJson, json, context);
    const tensors = parseAt(TensorTable, rawTensors, context);
    const metadata = rawMetadata === undefined ? null : parseAt(Metadata, rawMetadata, context);
    checkOffsets(path, tensors, fileSize - LENGTH_PREFIX_BYTES - headerBytes);
    return { headerBytes, tensors, metadata };
  } finally {
    await handle.close();
  }
}

/**
 * The data section must be covered exactly, tensor after tensor, with each
 * tensor's byte length matching its dtype and shape, as the reference reader
 * demands; this is what catches a file cut short after its header.
 */
function checkOffsets(path: string, tensors: Record<string, SafetensorsTensor>, dataBytes: number): void {
  const byStart = Object.entries(tensors).sort(
    ([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0] || a.data_offsets[1] - b.data_offsets[1],
  );
  let expectedStart = 0;
  for (const [name, tensor] of byStart) {
    const [start, end] = tensor.data_offsets;
    if (start !== expectedStart || end < start) {
      throw corrupt(
        path,
        `tensor "${name}" has data_offsets [${start}, ${end}], expected to start at ${expectedStart}`,
      );
    }
    const bits = DTYPE_BITS[tensor.dtype];
    const elements = elementCount(tensor.shape);
    if (bits !== undefined) {
      const bitLength = elements * bits;
      if (!Number.isSafeInteger(bitLength) || bitLength % 8 !== 0 || bitLength / 8 !== end - start) {
        throw corrupt(
          path,
          `tensor "${name}" (${tensor.dtype} [${tensor.shape.join(", ")}]) needs ${bitLength / 8} bytes but its offsets span ${end - start}`,
        );
      }
    }
    expectedStart = end;
  }
  if (expectedStart > dataBytes) {
    throw corrupt(
      path,
      `tensor data needs ${expectedStart} bytes but the file holds ${dataBytes} (truncated?)`,
      {
        needed: expectedStart,
        present: dataBytes,
      },
    );
  }
  if (expectedStart < dataBytes) {
    throw corrupt(path, `${dataBytes - expectedStart} bytes after the last tensor belong to none`);
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/** Tensor count, dtype histogram and parameter count of a header. */
export function summarizeSafetensors(header: SafetensorsHeader): SafetensorsSummary {
  const dtypes: Record<string, number> = {};
  let parameterCount = 0;
  const tensors = Object.values(header.tensors);
  for (const tensor of tensors) {
    dtypes[tensor.dtype] = (dtypes[tensor.dtype] ?? 0) + 1;
    parameterCount += elementCount(tensor.shape);
  }
  return {
    headerBytes: header.headerBytes,
    tensorCount: tensors.length,
    dtypes,
    parameterCount,
    metadata: header.metadata,
  };
}
