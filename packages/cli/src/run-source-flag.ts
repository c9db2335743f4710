/** `--from`: read a run somewhere else than this machine's runs directory. */
import { Flags } from "@oclif/core";

export const fromFlag = {
  from: Flags.string({
    description:
      "Read the run from a job server (http://host:port) or an artifact store holding synced runs (file:///path, s3://bucket/prefix) instead of this machine.",
  }),
};
