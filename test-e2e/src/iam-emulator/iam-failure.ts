/** A refusal in IAM's terms: HTTP status, IAM error code and message, Sender or Receiver fault. */
export class IamFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: "Sender" | "Receiver" = "Sender",
  ) {
    super(message);
    this.name = "IamFailure";
  }
}

export const noSuchEntity = (message: string): IamFailure => new IamFailure(404, "NoSuchEntity", message);
export const entityAlreadyExists = (message: string): IamFailure =>
  new IamFailure(409, "EntityAlreadyExists", message);
export const malformedPolicy = (message: string): IamFailure =>
  new IamFailure(400, "MalformedPolicyDocument", message);
export const validationError = (message: string): IamFailure =>
  new IamFailure(400, "ValidationError", message);
export const limitExceeded = (message: string): IamFailure => new IamFailure(409, "LimitExceeded", message);
