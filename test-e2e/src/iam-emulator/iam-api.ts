/**
 * IAM's Query API on the EC2 emulator's endpoint: a request signed for service `iam` is routed
 * here (as LocalStack routes by the signature's scope), so `AWS_ENDPOINT_URL_IAM` may name the
 * same URL as `AWS_ENDPOINT_URL_EC2`. SigV4 is verified with the EC2 emulator's credential book;
 * answers and refusals are IAM's XML with IAM's codes and statuses.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { requestId as newRequestId } from "../ec2-emulator/cloud.ts";
import { authenticateEc2, type CredentialBook } from "../ec2-emulator/ec2-auth.ts";
import { Ec2Failure } from "../ec2-emulator/ec2-failure.ts";
import { formPairs, unflatten } from "../ec2-emulator/query-params.ts";
import type { IamAccount } from "./iam-account.ts";
import { IamFailure, validationError } from "./iam-failure.ts";
import {
  AddRoleToInstanceProfileParams,
  CreateInstanceProfileParams,
  CreateRoleParams,
  GetRolePolicyParams,
  IAM_VERSION,
  InstanceProfileNameParams,
  ListRoleTagsParams,
  PutRolePolicyParams,
  parseIamAction,
  RoleNameParams,
  RolePagesParams,
  RolePolicyArnParams,
  TagRoleParams,
  UpdateAssumeRolePolicyParams,
} from "./iam-params.ts";
import {
  encodePolicy,
  iamErrorDocument,
  iamResponse,
  instanceProfileXml,
  members,
  roleXml,
  tagMembers,
  type XmlObject,
} from "./iam-xml.ts";

/** The service a SigV4 Authorization header is scoped to (`…/us-east-1/iam/aws4_request`). */
export function signedService(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  const m =
    typeof auth === "string" ? /Credential=[^/,\s]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(auth) : null;
  return m?.[1];
}

/** EC2's refusals of a signature, as IAM words them. */
function asIamFailure(error: Ec2Failure): IamFailure {
  switch (error.code) {
    case "AuthFailure":
    case "MissingAuthenticationToken":
      return new IamFailure(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
      );
    case "RequestExpired":
      return new IamFailure(403, "ExpiredToken", "The security token included in the request is expired");
    case "SignatureDoesNotMatch":
    case "IncompleteSignature":
      return new IamFailure(403, error.code, error.message);
    default:
      return validationError(error.message);
  }
}

type Handler = (params: Record<string, unknown>) => XmlObject | undefined;

export class IamApi {
  constructor(
    readonly account: IamAccount,
    private readonly book: CredentialBook,
  ) {}

  /** Answers one request already read (body) and routed here; never throws. */
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    rawPath: string,
    queryPairs: Array<[string, string]>,
    body: Buffer,
  ): void {
    const requestId = newRequestId();
    try {
      let caller: ReturnType<typeof authenticateEc2>;
      try {
        caller = authenticateEc2(req, rawPath, queryPairs, body, this.book, Date.now(), "iam");
      } catch (error) {
        throw error instanceof Ec2Failure ? asIamFailure(error) : error;
      }
      if (req.method !== "POST") throw validationError(`The HTTP method ${req.method} is not supported`);
      let params: Record<string, unknown>;
      try {
        params = unflatten([...queryPairs, ...formPairs(body.toString("utf8"))]);
      } catch (error) {
        throw error instanceof Ec2Failure ? validationError(error.message) : error;
      }
      const action = typeof params.Action === "string" ? params.Action : undefined;
      if (action === undefined) throw new IamFailure(400, "MissingAction", "Missing Action");
      if (params.Version !== IAM_VERSION) {
        throw new IamFailure(400, "InvalidParameterValue", `Invalid Version '${String(params.Version)}'`);
      }
      const handler = this.actions[action];
      if (handler === undefined) {
        throw new IamFailure(
          400,
          "InvalidAction",
          `Could not find operation ${action} for version ${IAM_VERSION}`,
        );
      }
      const record = this.account.admit(action, caller.credential.accessKeyId);
      let result: XmlObject | undefined;
      try {
        result = handler(params);
      } catch (error) {
        record.outcome = error instanceof IamFailure ? error.code : "InternalFailure";
        throw error;
      }
      res.statusCode = 200;
      res.setHeader("Content-Type", "text/xml");
      res.setHeader("x-amzn-RequestId", requestId);
      res.end(iamResponse(action, requestId, result));
    } catch (error) {
      const failure =
        error instanceof IamFailure
          ? error
          : new IamFailure(500, "ServiceFailure", "An internal error has occurred", "Receiver");
      if (!(error instanceof IamFailure))
        process.stderr.write(`iam-emulator: ${(error as Error)?.stack ?? error}\n`);
      res.statusCode = failure.status;
      res.setHeader("Content-Type", "text/xml");
      res.setHeader("x-amzn-RequestId", requestId);
      res.end(iamErrorDocument(failure.type, failure.code, failure.message, requestId));
    }
  }

  private readonly actions: Record<string, Handler> = {
    GetRole: (raw) => {
      const p = parseIamAction(RoleNameParams, raw);
      return { Role: roleXml(this.account.role(p.RoleName)) };
    },
    CreateRole: (raw) => {
      const p = parseIamAction(CreateRoleParams, raw);
      return { Role: roleXml(this.account.createRole(p)) };
    },
    UpdateAssumeRolePolicy: (raw) => {
      const p = parseIamAction(UpdateAssumeRolePolicyParams, raw);
      this.account.updateAssumeRolePolicy(p.RoleName, p.PolicyDocument);
      return undefined;
    },
    GetRolePolicy: (raw) => {
      const p = parseIamAction(GetRolePolicyParams, raw);
      return {
        RoleName: p.RoleName,
        PolicyName: p.PolicyName,
        PolicyDocument: encodePolicy(this.account.rolePolicy(p.RoleName, p.PolicyName)),
      };
    },
    PutRolePolicy: (raw) => {
      const p = parseIamAction(PutRolePolicyParams, raw);
      this.account.putRolePolicy(p.RoleName, p.PolicyName, p.PolicyDocument);
      return undefined;
    },
    DeleteRolePolicy: (raw) => {
      const p = parseIamAction(GetRolePolicyParams, raw);
      this.account.deleteRolePolicy(p.RoleName, p.PolicyName);
      return undefined;
    },
    // One page holds everything: runctl's roles have a handful of policies.
    ListRolePolicies: (raw) => {
      const p = parseIamAction(RolePagesParams, raw);
      const names = [...this.account.role(p.RoleName).policies.keys()].sort();
      return { PolicyNames: members(names.map((n) => ({ "#text": n }))), IsTruncated: false };
    },
    ListAttachedRolePolicies: (raw) => {
      const p = parseIamAction(RolePagesParams, raw);
      const arns = [...this.account.role(p.RoleName).attached].sort();
      return {
        AttachedPolicies: members(
          arns.map((arn) => ({ PolicyName: arn.split("/").pop() ?? arn, PolicyArn: arn })),
        ),
        IsTruncated: false,
      };
    },
    AttachRolePolicy: (raw) => {
      const p = parseIamAction(RolePolicyArnParams, raw);
      this.account.attachRolePolicy(p.RoleName, p.PolicyArn);
      return undefined;
    },
    DetachRolePolicy: (raw) => {
      const p = parseIamAction(RolePolicyArnParams, raw);
      this.account.detachRolePolicy(p.RoleName, p.PolicyArn);
      return undefined;
    },
    TagRole: (raw) => {
      const p = parseIamAction(TagRoleParams, raw);
      this.account.tagRole(p.RoleName, p.Tags);
      return undefined;
    },
    ListRoleTags: (raw) => {
      const p = parseIamAction(ListRoleTagsParams, raw);
      return { Tags: tagMembers(this.account.role(p.RoleName).tags), IsTruncated: false };
    },
    GetInstanceProfile: (raw) => {
      const p = parseIamAction(InstanceProfileNameParams, raw);
      return {
        InstanceProfile: instanceProfileXml(this.account.instanceProfile(p.InstanceProfileName), (n) =>
          this.account.role(n),
        ),
      };
    },
    CreateInstanceProfile: (raw) => {
      const p = parseIamAction(CreateInstanceProfileParams, raw);
      return {
        InstanceProfile: instanceProfileXml(this.account.createInstanceProfile(p), (n) =>
          this.account.role(n),
        ),
      };
    },
    AddRoleToInstanceProfile: (raw) => {
      const p = parseIamAction(AddRoleToInstanceProfileParams, raw);
      this.account.addRoleToInstanceProfile(p.InstanceProfileName, p.RoleName);
      return undefined;
    },
  };
}
