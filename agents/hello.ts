/**
 * A smoke-test agent: prints {"hello":"world"} and exits. It checks that the
 * agentainer/node-agent image runs a bundled program (scripts/build-images.sh builds it into the
 * image as /agents/hello.mjs):
 *   docker run --rm --network none agentainer/node-agent:local node /agents/hello.mjs
 */
console.log(JSON.stringify({ hello: "world" }));
