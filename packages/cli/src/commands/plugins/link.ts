import { commands } from "@oclif/plugin-plugins";
import { wrapForeign } from "../../foreign-command.ts";

/** `runctl plugins link` from @oclif/plugin-plugins, answering `--json` with runctl's envelope. */
export default wrapForeign("@oclif/plugin-plugins", "plugins:link", commands["plugins:link"]);
