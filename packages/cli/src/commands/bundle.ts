import { join, resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import { terminalSafe } from "@runctl/command";
import { type BundleInfo, buildBundle, formatBytes, isRunctlError } from "@runctl/core";
import { RunctlCommand } from "../command.ts";
import { table } from "../output.ts";

export default class Bundle extends RunctlCommand {
  static override summary = "Show what would be shipped from a directory: key, files, size, largest files.";
  static override description =
    "Files are chosen with .gitignore semantics (root and nested .gitignore, .runctlignore, `bundle.exclude`) plus default excludes such as .git, .venv, node_modules, checkpoints/, runs/ and *.pt. The archive is deterministic and keyed by the sha256 of its manifest, so an unchanged tree is packed once and reused.";
  static override examples = [
    "<%= config.bin %> bundle",
    "<%= config.bin %> bundle ./src --list",
    "<%= config.bin %> bundle --json",
  ];
  static override args = {
    dir: Args.directory({ description: "Directory to bundle.", default: ".", exists: true }),
  };
  static override flags = {
    list: Flags.boolean({ description: "List every file that would be shipped.", default: false }),
    store: Flags.string({
      description:
        "Upload the archive to this artifact store as bundles/<key>.tar.gz unless it is there already (file:///dir, s3://bucket/prefix).",
    }),
  };

  async run(): Promise<Record<string, unknown>> {
    const { args, flags } = await this.parse(Bundle);
    const { config } = await this.runctlConfig();
    const root = resolve(args.dir);
    this.progress(`Bundling ${root}…`);
    const info = await buildBundle(root, {
      cacheDir: join(this.config.cacheDir, "bundles"),
      extraExcludes: config.bundle.exclude,
      warnBytes: config.bundle.warn_size_mb * 1024 * 1024,
    });
    for (const warning of info.warnings) this.progress(`Warning: ${warning}`);
    const upload = flags.store === undefined ? undefined : await this.#upload(flags.store, info);
    if (flags.list) {
      this.log(
        table(
          ["SIZE", "MODE", "PATH"],
          info.files.map((f) =>
            f.type === "file"
              ? [formatBytes(f.size), f.mode.toString(8), f.path]
              : ["-", "link", `${f.path} -> ${f.target}`],
          ),
        ),
      );
      this.log("");
    }
    this.log(`key      ${info.key}`);
    this.log(`files    ${info.fileCount}`);
    this.log(
      `size     ${formatBytes(info.totalBytes)} (${formatBytes(info.archiveBytes)} packed${info.cached ? ", cached" : ""})`,
    );
    this.log(`archive  ${terminalSafe(info.archivePath)}`);
    if (info.largest.length > 0) {
      this.log("largest");
      for (const f of info.largest.slice(0, 5))
        this.log(`  ${formatBytes(f.size).padStart(10)}  ${terminalSafe(f.path)}`);
    }
    if (upload)
      this.log(`store    ${terminalSafe(upload.url)} (${upload.uploaded ? "uploaded" : "already there"})`);
    const { files, ...summary } = info;
    return { bundle: flags.list ? info : summary, ...(upload ? { upload } : {}) };
  }

  /** Content-addressed: an archive already stored under its key is not sent again. */
  async #upload(url: string, info: BundleInfo): Promise<{ url: string; key: string; uploaded: boolean }> {
    const store = await (await this.registry()).openArtifactStore(url);
    const key = `bundles/${info.key}.tar.gz`;
    const target = { url: `${store.url.replace(/\/+$/, "")}/${key}`, key };
    if ((await store.head(key)) !== null) return { ...target, uploaded: false };
    try {
      await store.putFile(key, info.archivePath, { ifNoneMatch: "*" });
    } catch (error) {
      // Another upload of the same content won the race: the bytes are the same.
      if (isRunctlError(error) && error.code === "artifact_exists") return { ...target, uploaded: false };
      throw error;
    }
    return { ...target, uploaded: true };
  }
}
