/**
 * S3's XML: responses built and request bodies (CompleteMultipartUpload, DeleteObjects) parsed
 * with fast-xml-parser, the bodies then validated with zod so a malformed document is
 * `MalformedXML`, as S3 answers it.
 */
import { XMLBuilder, XMLParser } from "fast-xml-parser";
import { z } from "zod";
import { S3Failure } from "./s3-failure.ts";

const NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/";

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, processEntities: true });

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  isArray: (name) => name === "Part" || name === "Object",
  processEntities: true,
});

export function xmlDocument(root: string, body: Record<string, unknown>, namespaced = true): string {
  const content = namespaced ? { "@_xmlns": NAMESPACE, ...body } : body;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [root]: content })}`;
}

export function errorDocument(
  code: string,
  message: string,
  extra: Record<string, string>,
  requestId: string,
): string {
  return xmlDocument("Error", { Code: code, Message: message, ...extra, RequestId: requestId }, false);
}

function parse<T>(schema: z.ZodType<T>, text: string, root: string): T {
  let doc: unknown;
  try {
    doc = parser.parse(text, true);
  } catch {
    throw new S3Failure(
      400,
      "MalformedXML",
      "The XML you provided was not well-formed or did not validate against our published schema.",
    );
  }
  const parsed = z.object({ [root]: schema }).safeParse(doc);
  if (!parsed.success) {
    throw new S3Failure(
      400,
      "MalformedXML",
      "The XML you provided was not well-formed or did not validate against our published schema.",
    );
  }
  return (parsed.data as Record<string, T>)[root] as T;
}

const CompleteBody = z.object({
  Part: z.array(z.object({ PartNumber: z.string().regex(/^\d+$/), ETag: z.string() })).min(1),
});

export function parseCompleteMultipart(text: string): Array<{ partNumber: number; etag: string }> {
  return parse(CompleteBody, text, "CompleteMultipartUpload").Part.map((p) => ({
    partNumber: Number(p.PartNumber),
    etag: p.ETag,
  }));
}

const DeleteBody = z.object({
  Object: z
    .array(z.object({ Key: z.string().min(1) }))
    .min(1)
    .max(1000),
  Quiet: z.enum(["true", "false"]).optional(),
});

export function parseDeleteObjects(text: string): { keys: string[]; quiet: boolean } {
  const body = parse(DeleteBody, text, "Delete");
  return { keys: body.Object.map((o) => o.Key), quiet: body.Quiet === "true" };
}
