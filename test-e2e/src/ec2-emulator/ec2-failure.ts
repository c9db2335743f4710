/** A refusal in EC2's terms: HTTP status, EC2 error code and message, as the Query API sends them. */
export class Ec2Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "Ec2Failure";
  }
}

export const invalidParameterValue = (message: string): Ec2Failure =>
  new Ec2Failure(400, "InvalidParameterValue", message);

export const missingParameter = (name: string): Ec2Failure =>
  new Ec2Failure(400, "MissingParameter", `The request must contain the parameter ${name}`);

export const instanceNotFound = (ids: readonly string[]): Ec2Failure =>
  new Ec2Failure(
    400,
    "InvalidInstanceID.NotFound",
    ids.length === 1
      ? `The instance ID '${ids[0]}' does not exist`
      : `The instance IDs '${ids.join(", ")}' do not exist`,
  );

export const instanceMalformed = (id: string): Ec2Failure =>
  new Ec2Failure(400, "InvalidInstanceID.Malformed", `Invalid id: "${id}"`);

export const insufficientCapacity = (instanceType: string, zone: string, spot: boolean): Ec2Failure =>
  new Ec2Failure(
    500,
    "InsufficientInstanceCapacity",
    spot
      ? `There is no Spot capacity available that matches your request.`
      : `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}). Our system will be working on provisioning additional capacity. You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing a different Availability Zone.`,
  );

export const requestLimitExceeded = (): Ec2Failure =>
  new Ec2Failure(503, "RequestLimitExceeded", "Request limit exceeded.");
