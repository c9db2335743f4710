/**
 * On-demand prices from the dated table shipped in the package (`prices/ec2-on-demand.json`),
 * checked with zod when read. A type or region the table lacks has no price (null), never a guess.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";

export const PriceTable = z.object({
  date: z.iso.date(),
  currency: z.literal("USD"),
  regions: z.record(z.string(), z.record(z.string(), z.number().nonnegative())),
});
export type PriceTable = z.infer<typeof PriceTable>;

let cached: PriceTable | undefined;

/** The shipped table; `src/` and `dist/` both sit beside `prices/`. */
export function shippedPriceTable(): PriceTable {
  cached ??= PriceTable.parse(
    JSON.parse(readFileSync(new URL("../prices/ec2-on-demand.json", import.meta.url), "utf8")),
  );
  return cached;
}

export function onDemandPrice(table: PriceTable, region: string, instanceType: string): number | null {
  return table.regions[region]?.[instanceType] ?? null;
}
