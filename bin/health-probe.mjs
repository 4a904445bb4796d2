#!/usr/bin/env node
// The container health check of every Agentainer service (docker-compose.yml, Dockerfile): one
// gRPC call to grpc.health.v1.Health/Check over HTTP/2 cleartext, in plain JavaScript so that it
// starts in a few tens of milliseconds (the CLI loads the whole suite through tsx).
//
//   node bin/health-probe.mjs [port] [host]     # defaults: $PORT, 127.0.0.1
//
// Exit 0 when the server answers SERVING, 1 otherwise (NOT_SERVING, an error, no answer in 3 s),
// with one line on stderr saying why. Health is open even when AGENTAINER_API_TOKEN is set.
import { connect, constants } from "node:http2";

const port = Number(process.argv[2] ?? process.env.PORT ?? "");
const host = process.argv[3] ?? "127.0.0.1";
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error("health-probe: give the port as the first argument or in PORT");
  process.exit(1);
}

function fail(why) {
  console.error(`health-probe: ${host}:${port}: ${why}`);
  process.exit(1);
}

const timer = setTimeout(() => fail("no answer within 3 s"), 3000);
const session = connect(`http://${host}:${port}`);
session.on("error", (err) => fail(err.message));

const req = session.request({
  [constants.HTTP2_HEADER_METHOD]: "POST",
  [constants.HTTP2_HEADER_PATH]: "/grpc.health.v1.Health/Check",
  [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
  te: "trailers",
});
const chunks = [];
let status;
req.on("response", (headers) => {
  // A trailers-only error answer carries grpc-status in the headers.
  if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
});
req.on("trailers", (trailers) => {
  status = String(trailers["grpc-status"] ?? status);
});
req.on("data", (chunk) => chunks.push(chunk));
req.on("error", (err) => fail(err.message));
req.on("end", () => {
  clearTimeout(timer);
  session.close();
  if (status !== "0") fail(`grpc-status ${status ?? "missing"}`);
  // The response: a 5-byte gRPC envelope, then HealthCheckResponse { status = 1 (SERVING) },
  // which is the bytes 08 01. Any other status leaves a different message.
  const body = Buffer.concat(chunks);
  const message = body.subarray(5);
  if (message.length === 2 && message[0] === 0x08 && message[1] === 0x01) process.exit(0);
  fail(`not serving (response ${message.toString("hex") || "empty"})`);
});
// An empty HealthCheckRequest (service "" is the server as a whole): flag 0, length 0.
req.end(Buffer.alloc(5));
