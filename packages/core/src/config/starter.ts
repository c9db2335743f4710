/** The file `runctl init` writes. */

/**
 * A `.runctl.toml` with every section and every key, each commented out at its
 * default (or an example, for keys without one) and described. It parses and
 * validates as-is, and `runctl config set` places a key right under its
 * commented example. Provider plugins document their own sections.
 */
export function starterConfig(): string {
  return `# runctl configuration. Precedence, lowest first: built-in defaults,
# ~/.config/runctl/config.toml (or $XDG_CONFIG_HOME/runctl/config.toml),
# this file (the nearest .runctl.toml above the working directory),
# RUNCTL_<SECTION>_<KEY> environment variables, then command-line flags.
# Uncomment a line to change it, or use \`runctl config set <section.key> <value>\`.

[project]
# Project name, recorded on runs and as the runctl:project tag. Default: unset.
# name = "my-project"
# Who launches runs, recorded as the runctl:user tag. Default: unset.
# user = "alice"

[local]
# Python interpreter for local runs. Default: unset (detect uv, then python3).
# python = ".venv/bin/python"
# Where run directories are created, relative to the project. Default: "runs".
# runs_dir = "runs"
# Where checkpoints are written. Default: "checkpoints".
# checkpoint_dir = "checkpoints"

[bundle]
# Extra gitignore-style patterns left out of code bundles. Default: [].
# exclude = ["data/", "*.ckpt"]
# Warn when a code bundle is larger than this many megabytes. Default: 100.
# warn_size_mb = 100

[nats]
# NATS server URL; unset means NATS is off and everything stays on this machine.
# url = "nats://127.0.0.1:4222"
# Token authentication. Default: unset.
# token = "s3cr3t"
# User and password authentication. Default: unset.
# user = "runctl"
# password = "s3cr3t"
# Path to a .creds file (JWT and NKey seed). Default: unset.
# creds = "/path/to/runctl.creds"
# Name of a \`nats\` CLI context to take connection settings from. Default: unset.
# context = "runctl"
# Seed of the NATS account (SA...) that signs per-run credentials (runctl nats creds, remote runs);
# kept on the launching side only. A secret: prefer a file or RUNCTL_NATS_ACCOUNT_SEED. Default: unset.
# account_seed = "SA..."
# account_seed_file = "/path/to/account.nk"
# TLS: CA certificate, client certificate and key (PEM paths). Default: unset.
# tls_ca = "ca.pem"
# tls_cert = "client-cert.pem"
# tls_key = "client-key.pem"
# Prefix of this client's reply subjects. Default: "_INBOX". A run's own credential allows only
# "_INBOX_<run>" (remote agents set it themselves).
# inbox_prefix = "_INBOX"
# Prefix of every runctl subject. Default: "runctl".
# prefix = "runctl"

[server]
# Where clients and workers reach the job server (runctl submit, runctl worker). Default below.
# url = "http://127.0.0.1:8080"
# Bearer token; runctl server requires one when it listens beyond loopback. Default: unset.
# token = "s3cr3t"
# Address and port runctl server listens on. Default: "127.0.0.1" and 8080.
# host = "127.0.0.1"
# port = 8080
# The server's database and uploaded runs. Default: unset ($XDG_DATA_HOME/runctl/server).
# data_dir = "/srv/runctl"
# Lease a worker takes on a job; heartbeats renew it. Default: 60.
# lease_seconds = 60

[s3]
# Region of the bucket. Default: unset (AWS_REGION or the profile's region, else us-east-1).
# region = "eu-west-1"
# S3-compatible endpoint (R2, MinIO, B2); AWS_ENDPOINT_URL_S3 overrides it. Default: unset (AWS).
# endpoint = "http://127.0.0.1:9000"
# Path-style URLs (endpoint/bucket/key), which most S3-compatible stores need. Default: false.
# force_path_style = false
# AWS profile for credentials and region; AWS_PROFILE overrides it. Default: unset (the default chain).
# profile = "training"
# Multipart part size in MiB (5 or more). Default: 16.
# part_size_mb = 16
# Files and parts transferred at once by runctl s3. Default: 8.
# concurrency = 8

[output]
# Colour in terminal output (NO_COLOR and non-terminals turn it off too). Default: true.
# color = true
`;
}
