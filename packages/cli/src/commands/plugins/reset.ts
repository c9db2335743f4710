import { commands } from "@oclif/plugin-plugins";
import { wrapForeign } from "../../foreign-command.ts";

/** `runctl plugins reset` from @oclif/plugin-plugins, answering `--json` with runctl's envelope. */
export default wrapForeign("@oclif/plugin-plugins", "plugins:reset", commands["plugins:reset"]);
