/** A refusal in S3's terms: HTTP status, S3 error code, message, and extra XML fields. */
export class S3Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
    this.name = "S3Failure";
  }
}

export const noSuchKey = (key: string): S3Failure =>
  new S3Failure(404, "NoSuchKey", "The specified key does not exist.", { Key: key });

export const noSuchBucket = (bucket: string): S3Failure =>
  new S3Failure(404, "NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });

export const noSuchUpload = (uploadId: string): S3Failure =>
  new S3Failure(
    404,
    "NoSuchUpload",
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    { UploadId: uploadId },
  );

export const preconditionFailed = (condition: string): S3Failure =>
  new S3Failure(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", {
    Condition: condition,
  });
