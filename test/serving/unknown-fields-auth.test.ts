import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DescribeWorkflowStateRequestSchema,
  StateService,
  CreateWorkflowStateRequestSchema,
} from "../../gen/agentainer/state/v1/state_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import {
  CreateWorkflowRequestSchema,
  type CreateWorkflowRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import { StepSchema } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { findUnknownField } from "../../lib/unknown-fields.js";
import { createServiceTransport } from "../../lib/transport.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { codeOf } from "../support/await.js";

/** The wire bytes of `bytes` with field `number` (a varint, value 1) appended. */
function withUnknownVarint(bytes: Uint8Array, number: number): Uint8Array {
  const tag: number[] = [];
  let v = (number << 3) | 0;
  while (v > 0x7f) {
    tag.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  tag.push(v);
  return Uint8Array.from([...bytes, ...tag, 1]);
}

/** Calls a unary method with raw request bytes over gRPC (grpc-js, no Connect client). */
function rawCall(
  port: number,
  path: string,
  body: Uint8Array,
  metadata = new grpc.Metadata(),
): Promise<{ code: grpc.status; details: string }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      metadata,
      (err) => {
        client.close();
        resolve({ code: err?.code ?? grpc.status.OK, details: err?.details ?? "" });
      },
    );
  });
}

describe("unknown fields", () => {
  it("finds one in a nested message and names its path", () => {
    const req = create(CreateWorkflowRequestSchema, {
      name: "w",
      steps: [{ id: "a" }, { id: "b", image: "x" }],
    });
    const bytes = toBinary(CreateWorkflowRequestSchema, req);
    expect(
      findUnknownField(CreateWorkflowRequestSchema, fromBinary(CreateWorkflowRequestSchema, bytes)),
    ).toBeUndefined();

    // The second step again, with field 999 appended, as a newer client would send it.
    const step = req.steps[1]!;
    const stepBytes = withUnknownVarint(toBinary(StepSchema, step), 999);
    const decoded: CreateWorkflowRequest = fromBinary(CreateWorkflowRequestSchema, bytes);
    decoded.steps[1] = fromBinary(StepSchema, stepBytes);
    expect(findUnknownField(CreateWorkflowRequestSchema, decoded)).toEqual({
      path: "steps[1]",
      number: 999,
      typeName: "agentainer.workflow.v1.Step",
    });
  });

  describe("over gRPC", () => {
    let state: RunningService;
    beforeAll(async () => {
      state = await startStateService({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" });
    });
    afterAll(async () => {
      await state.close();
    });

    it("refuses a request carrying one with INVALID_ARGUMENT, and changes nothing", async () => {
      const body = toBinary(
        CreateWorkflowStateRequestSchema,
        create(CreateWorkflowStateRequestSchema, { workflowId: "unknown-fields" }),
      );
      const path = "/agentainer.state.v1.StateService/CreateWorkflowState";
      const refused = await rawCall(state.port, path, withUnknownVarint(body, 77));
      expect(refused.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(refused.details).toContain("unknown field number 77");
      expect(refused.details).toContain("agentainer.state.v1.CreateWorkflowStateRequest");

      const describe = toBinary(
        DescribeWorkflowStateRequestSchema,
        create(DescribeWorkflowStateRequestSchema, { workflowId: "unknown-fields" }),
      );
      const missing = await rawCall(
        state.port,
        "/agentainer.state.v1.StateService/DescribeWorkflowState",
        describe,
      );
      expect(missing.code).toBe(grpc.status.NOT_FOUND);

      // The same request without the extra field is taken.
      expect((await rawCall(state.port, path, body)).code).toBe(grpc.status.OK);
    });
  });
});

describe("API token", () => {
  const token = "s3cret-token-for-tests-0123456789";
  let state: RunningService;
  beforeAll(async () => {
    state = await startStateService({
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "silent",
      AGENTAINER_API_TOKEN: token,
    });
  });
  afterAll(async () => {
    await state.close();
  });

  it("refuses calls without the token or with a wrong one as UNAUTHENTICATED", async () => {
    const anonymous = createClient(StateService, createServiceTransport(state.url));
    const wrong = createClient(StateService, createServiceTransport(state.url, "x".repeat(32)));
    expect(await codeOf(anonymous.createWorkflowState({ workflowId: "auth-a" }))).toBe(
      Code.Unauthenticated,
    );
    expect(await codeOf(wrong.createWorkflowState({ workflowId: "auth-a" }))).toBe(
      Code.Unauthenticated,
    );
    const authorized = createClient(StateService, createServiceTransport(state.url, token));
    // Nothing was created by the refused calls: the first authorized create succeeds.
    expect(await codeOf(authorized.createWorkflowState({ workflowId: "auth-a" }))).toBe("ok");
    expect(await codeOf(authorized.describeWorkflowState({ workflowId: "auth-a" }))).toBe("ok");
  });

  it("leaves gRPC health open for probes, and guards reflection", async () => {
    const health = createClient(Health, createServiceTransport(state.url));
    const res = await health.check({ service: "" });
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const reflection = await rawCall(
      state.port,
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      new Uint8Array(),
    );
    expect(reflection.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("is rejected at start when too short to be a secret", async () => {
    await expect(
      startStateService({
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "silent",
        AGENTAINER_API_TOKEN: "short",
      }),
    ).rejects.toThrow(/AGENTAINER_API_TOKEN: must be 16 to 512 printable ASCII/);
  });
});
