import { Args } from "@oclif/core";
import { checkpointInfo } from "@runctl/agent/checkpoints";
import { formatBytes } from "@runctl/core";
import { RunctlCommand } from "../../command.ts";

export default class CheckpointInfo extends RunctlCommand {
  static override summary =
    "Show what a checkpoint file holds: size, format and, for safetensors, its tensors.";
  static override description =
    "For .safetensors files only the header is read (never the tensor data): tensor count, dtypes, parameter count and `__metadata__`, and the header is checked against the file size so a truncated file is reported as corrupt. Torch files (.pt, .pth, .ckpt, .bin) are identified by their first bytes and never unpickled, since unpickling can run arbitrary code.";
  static override examples = [
    "<%= config.bin %> checkpoint info checkpoints/model.safetensors",
    "<%= config.bin %> checkpoint info checkpoints/ckpt_000120.pt --json",
  ];
  static override args = {
    path: Args.string({ description: "Checkpoint file.", required: true }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args } = await this.parse(CheckpointInfo);
    const info = await checkpointInfo(args.path);
    this.log(`path        ${info.path}`);
    this.log(`format      ${info.format}`);
    this.log(`size        ${formatBytes(info.size)}`);
    this.log(`modified    ${info.mtime}`);
    if (info.step !== null) this.log(`step        ${info.step}`);
    const st = info.safetensors;
    if (st !== null) {
      this.log(`tensors     ${st.tensorCount}`);
      this.log(`parameters  ${st.parameterCount.toLocaleString("en-US")}`);
      const dtypes = Object.entries(st.dtypes)
        .sort(([, a], [, b]) => b - a)
        .map(([dtype, n]) => `${dtype} ×${n}`);
      if (dtypes.length > 0) this.log(`dtypes      ${dtypes.join(", ")}`);
      for (const [key, value] of Object.entries(st.metadata ?? {})) this.log(`metadata    ${key} = ${value}`);
    }
    return { checkpoint: info };
  }
}
