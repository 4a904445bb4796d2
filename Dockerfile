# The Agentainer Flow image: the four services and the CLI in one image; docker-compose.yml runs
# it once per service (`serve state|executor|pool|workflow`).
#
#   docker build -t agentainer/flow:local .
#   docker run --rm agentainer/flow:local --help
#
# Where a registry is reachable this is an ordinary build: node:20-slim, then `npm ci` of the
# production dependencies. Where none is (these machines), scripts/build-images.sh builds a local
# stand-in of node:20-slim and a build context that already holds this platform's production
# node_modules, so the npm step is skipped and nothing is fetched: the same file either way.
# Classic builder and BuildKit both work.

FROM node:20-slim AS build
WORKDIR /app
# What the image needs, no more (.dockerignore keeps the rest out of the context): the sources
# run through tsx, as `npx agentainer` does after `npm install`.
COPY . .
RUN if [ ! -d node_modules ]; then npm ci --omit=dev --no-audit --no-fund; fi \
  && node -e 'require.resolve("tsx/esm/api"); require.resolve("dockerode")'
# The repository's agents (agents/*.ts: the word-count mapper and reducer, the test agents),
# bundled as /agents/<name>.mjs as in agentainer/node-agent, so that this image can also serve as
# the agent image of a workflow where nothing else was built:
#   --mapper agentainer/flow:local --mapper-command node /agents/word-mapper.mjs
RUN mkdir -p /agents && for src in agents/*.ts; do \
    node_modules/.bin/esbuild "$src" --bundle --platform=node --format=esm --target=node20 \
      --log-level=warning --outfile="/agents/$(basename "$src" .ts).mjs" || exit 1; \
  done

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
COPY --from=build /agents /agents
# State, Pool and Workflow run as the unprivileged `node` user. The Executor needs the Docker
# socket, which only root (or the socket's group) may use: docker-compose.yml runs it as root.
USER node
EXPOSE 7071 7072 7073 7074
# Every service answers gRPC health on its PORT: `node /app/bin/health-probe.mjs` is the check
# (docker-compose.yml sets it per service). No HEALTHCHECK here, since agent containers made from
# this image have no server to check.
ENTRYPOINT ["node", "/app/bin/agentainer.js"]
CMD ["serve", "workflow"]
