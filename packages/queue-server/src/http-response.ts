/**
 * How the job server answers: JSON bodies, and errors in the API's one error
 * shape `{detail, error_code, hint}` (docs/job-queue.md, Errors). Handlers
 * throw HttpError; the dispatcher turns it into the response.
 */
import type { ServerResponse } from "node:http";
import type { ErrorResponse } from "@runctl/tracker";

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly hint: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** Machine-readable facts beside `detail` (e.g. `size` for `upload_gap`). */
  readonly extra: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    code: string,
    detail: string,
    options: { hint?: string; headers?: Record<string, string>; extra?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.hint = options.hint;
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }

  toBody(): ErrorResponse & Record<string, unknown> {
    const body: ErrorResponse & Record<string, unknown> = {
      ...this.extra,
      detail: this.message,
      error_code: this.code,
    };
    if (this.hint !== undefined) body.hint = this.hint;
    return body;
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  sendJson(res, error.status, error.toBody(), error.headers);
}
