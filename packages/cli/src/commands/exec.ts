import Local from "./local.ts";

export default class Exec extends Local {
  static override summary =
    "Run any command on this machine as a tracked run (no interpreter is chosen for you).";
  static override description =
    "Like `runctl local`, but the target runs exactly as given, e.g. `runctl exec -- torchrun --standalone train.py` or `runctl exec -- ./train.sh`. All of `runctl local`'s flags apply.";
  static override examples = [
    "<%= config.bin %> exec -- python3 -m mypkg.train --lr 0.01",
    "<%= config.bin %> exec ./train.sh -- --epochs 3",
  ];
  static override strict = false;
  protected static override raw = true;
}
