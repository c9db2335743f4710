#!/usr/bin/env node
// The minimum a launch needs: one RunInstances with the SDK, every input known in advance
// (image, security group, zone), no look-ups. The baseline of bench.mjs.
// Usage: node bare-launch.mjs IMAGE GROUP_ID ZONE TYPE (endpoint and key from the environment)
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";

const [image, group, zone, type] = process.argv.slice(2);
// Region, endpoint and key come from the environment (AWS_REGION, AWS_ENDPOINT_URL_EC2, …), as for runctl.
const client = new EC2Client({ maxAttempts: 1 });
const out = await client.send(
  new RunInstancesCommand({
    ImageId: image,
    InstanceType: type,
    MinCount: 1,
    MaxCount: 1,
    SecurityGroupIds: [group],
    Placement: { AvailabilityZone: zone },
    InstanceMarketOptions: { MarketType: "spot" },
    MetadataOptions: { HttpTokens: "required" },
    TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "CreatedBy", Value: "runctl" }] }],
  }),
);
process.stdout.write(`${out.Instances?.[0]?.InstanceId}\n`);
client.destroy();
