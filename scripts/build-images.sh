#!/usr/bin/env bash
# Builds the local images (images/README.md), with no registry:
#   agentainer/busybox:local     FROM scratch + the host's static busybox (the shell agent image)
#   agentainer/node:local        the busybox image + the host's node and the libraries ldd lists
#   agentainer/node-agent:local  the node image + agents/*.ts bundled by esbuild into /agents
#   node:20-slim, redis:7-alpine, nats:2.9-alpine   stand-ins of the mesh's public images
#   agentainer/flow:local        the project's image (Dockerfile), for docker-compose.yml
#
#   bash scripts/build-images.sh           # build what is missing or out of date
#   bash scripts/build-images.sh --force   # rebuild them all from scratch (docker build --no-cache)
#
# Idempotent: each image carries a label with a hash of its inputs (this script, its images/<name>/
# directory, the host files copied in, its base image's id, the agent bundles); an image whose
# label matches is left alone, so a run with nothing to do takes a few seconds. Quiet on success
# but for one line per image built; on failure, prints the build's output. Run by scripts/setup.sh
# (so by `npm test` and CI). Uses the classic builder (DOCKER_BUILDKIT=0): buildx may be missing.
# Every build runs with --network none; no base image but scratch and our own.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

LABEL="agentainer.build-inputs"
BUSYBOX="${BUSYBOX:-/usr/bin/busybox}"
ESBUILD="$ROOT/node_modules/.bin/esbuild"
export DOCKER_BUILDKIT=0

say() { printf 'build-images: %s\n' "$*"; }
die() {
  printf 'build-images: error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

force=0
build_flags=()
for arg in "$@"; do
  case "$arg" in
    --force)
      force=1
      build_flags+=(--no-cache)
      ;;
    -h | --help)
      sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg (usage: bash scripts/build-images.sh [--force])" ;;
  esac
done

have docker || die "docker is not installed: run \`bash scripts/setup.sh\`"
timeout 10 docker info >/dev/null 2>&1 ||
  die "the Docker engine does not answer (docker info): run \`bash scripts/setup.sh\`"

work="$(mktemp -d "${TMPDIR:-/tmp}/agentainer-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Two runs at once (a developer's and CI's) would race on the tags: take turns.
lock="${TMPDIR:-/tmp}/agentainer-build-images.lock"
if have flock && { exec 9>>"$lock"; } 2>/dev/null; then
  flock -w 600 9 || die "another build-images.sh run holds $lock"
fi

sha() { sha256sum <"$1" | cut -d' ' -f1; }

# The id of a local image, empty when there is none.
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# The inputs label of a local image, empty when there is no image or no label.
image_inputs() {
  local value
  value="$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true)"
  [ "$value" = "<no value>" ] && value=""
  printf '%s' "$value"
}

# Prints a manifest line per file of images/<name>/ and one for this script; the caller appends
# its own lines (host files, base image) and hashes the lot.
definition_manifest() {
  local name="$1" f
  printf 'script %s\n' "$(sha "$ROOT/scripts/build-images.sh")"
  while IFS= read -r f; do
    printf 'def %s %s\n' "${f#"$ROOT/"}" "$(sha "$f")"
  done < <(find "$ROOT/images/$name" -type f | LC_ALL=C sort)
}

up_to_date() { [ "$force" -eq 0 ] && [ -n "$2" ] && [ "$(image_inputs "$1")" = "$2" ]; }

# A fresh build context for images/<name>, holding its Dockerfile.
new_context() {
  local ctx
  ctx="$(mktemp -d "$work/$1.XXXXXX")"
  install -m 0644 "$ROOT/images/$1/Dockerfile" "$ctx/Dockerfile"
  printf '%s' "$ctx"
}

human_size() {
  awk -v b="$1" 'BEGIN { if (b >= 1000000) printf "%.1f MB", b / 1000000; else printf "%.0f kB", b / 1000 }'
}

# build IMAGE CONTEXT INPUTS CHECK...: builds, tags, then runs CHECK (a command line for `docker
# run`) and expects it to succeed; a failing check removes the image, so the next run rebuilds it.
built_any=0
extra_labels=()
build() {
  local image="$1" ctx="$2" inputs="$3" started log
  shift 3
  started="$(date +%s)"
  log="$ctx.log"
  if ! docker build "${build_flags[@]}" "${extra_labels[@]}" --network none --label "$LABEL=$inputs" \
    -t "$image" "$ctx" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "docker build of $image failed (see above)"
  fi
  if ! docker run --rm --network none "$image" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    docker image rm -f "$image" >/dev/null 2>&1 || true
    die "$image was built but does not work: \`docker run --rm $image $*\` failed (see above)"
  fi
  built_any=1
  local size
  size="$(human_size "$(docker image inspect -f '{{.Size}}' "$image")")"
  say "built $image ($size, $(($(date +%s) - started)) s)"
}

# --- agentainer/busybox:local ---------------------------------------------------------------------
[ -x "$BUSYBOX" ] ||
  die "$BUSYBOX is missing: install the Debian package busybox-static (\`bash scripts/setup.sh\`)"
if ldd "$BUSYBOX" 2>&1 | grep -q '=>'; then
  die "$BUSYBOX is dynamically linked: install busybox-static instead of busybox"
fi

image="agentainer/busybox:local"
inputs="$({
  definition_manifest busybox
  printf 'busybox %s\n' "$(sha "$BUSYBOX")"
} | sha256sum | cut -d' ' -f1)"
if ! up_to_date "$image" "$inputs"; then
  ctx="$(new_context busybox)"
  install -m 0755 "$BUSYBOX" "$ctx/busybox"
  install -m 0644 "$ROOT/images/busybox/passwd" "$ROOT/images/busybox/group" "$ctx/"
  build "$image" "$ctx" "$inputs" sh -c 'test -x /bin/sh && test -k /tmp && echo ok'
fi

# --- agentainer/node:local ------------------------------------------------------------------------
have node || die "node is not installed (Node >= 20 is required)"
node_bin="$(readlink -f "$(command -v node)")"

# The libraries a host binary loads, one absolute path a line (the loader included), from ldd:
# lines `libc.so.6 => /lib/.../libc.so.6 (0x...)` and `/lib64/ld-linux-x86-64.so.2 (0x...)`;
# linux-vdso.so.1 is the kernel's. A static binary has none.
ldd_libs() {
  local bin="$1" out line path
  out="$(ldd "$bin" 2>&1 || true)"
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      *"=> not found"*) die "ldd $bin: ${line%% =>*} is not found on this machine" ;;
      *"=> /"*) path="${line#*=> }" ;;
      /*) path="$line" ;;
      *) continue ;;
    esac
    printf '%s\n' "${path%% (*}"
  done <<<"$out"
}

# stage_binary BIN ROOTFS TARGET: copies a host binary to ROOTFS/TARGET and every library it
# loads to the same absolute path under ROOTFS (-L: the file itself where the host path is a
# symlink, e.g. libstdc++.so.6 -> libstdc++.so.6.0.30, /lib64 -> usr/lib64).
stage_binary() {
  local bin="$1" rootfs="$2" target="$3" lib
  install -D -m 0755 "$bin" "$rootfs$target"
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
    chmod 0755 "$rootfs$lib"
  done < <(ldd_libs "$bin")
}

# The manifest lines of a host binary and its libraries, for an image's inputs hash.
binary_manifest() {
  local bin="$1" lib
  printf 'bin %s %s\n' "$bin" "$(sha "$bin")"
  while IFS= read -r lib; do
    if [ -n "$lib" ]; then printf 'lib %s %s\n' "$lib" "$(sha "$lib")"; fi
  done < <(ldd_libs "$bin")
}

image="agentainer/node:local"
base_id="$(image_id agentainer/busybox:local)"
inputs="$({
  definition_manifest node
  printf 'base %s\n' "$base_id"
  binary_manifest "$node_bin"
} | sha256sum | cut -d' ' -f1)"
if ! up_to_date "$image" "$inputs"; then
  ctx="$(new_context node)"
  rootfs="$ctx/rootfs"
  stage_binary "$node_bin" "$rootfs" /usr/local/bin/node
  install -D -m 0644 "$ROOT/images/node/nsswitch.conf" "$rootfs/etc/nsswitch.conf"
  want="$(node -p process.version)"
  build "$image" "$ctx" "$inputs" \
    node -e "if (process.version !== '$want') { console.error(process.version); process.exit(1); }"
fi

# --- agentainer/node-agent:local ------------------------------------------------------------------
# The bundles are made on every run (esbuild takes milliseconds) and their bytes are the input:
# an agent or any module it imports changing means a new image.
[ -x "$ESBUILD" ] || die "$ESBUILD is missing: run \`npm ci\`"
ctx="$(new_context node-agent)"
mkdir "$ctx/agents"
shopt -s nullglob
for src in "$ROOT"/agents/*.ts; do
  case "$src" in *.d.ts) continue ;; esac
  name="$(basename "$src" .ts)"
  "$ESBUILD" "$src" --bundle --platform=node --format=esm --target=node20 \
    --log-level=warning --outfile="$ctx/agents/$name.mjs" ||
    die "esbuild could not bundle agents/$name.ts (see above)"
done
shopt -u nullglob

image="agentainer/node-agent:local"
base_id="$(image_id agentainer/node:local)"
inputs="$({
  definition_manifest node-agent
  printf 'base %s\n' "$base_id"
  while IFS= read -r f; do
    printf 'agent %s %s\n' "$(basename "$f")" "$(sha "$f")"
  done < <(find "$ctx/agents" -type f | LC_ALL=C sort)
} | sha256sum | cut -d' ' -f1)"
if ! up_to_date "$image" "$inputs"; then
  build "$image" "$ctx" "$inputs" sh -c 'test "$(pwd)" = /agents && node -e 0'
fi

# --- stand-ins for the public images of docker-compose.yml and the Dockerfile -----------------------
# node:20-slim, redis:7-alpine and nats:2.9-alpine, built from this machine's binaries under those
# very names, so the compose file and the Dockerfile run unchanged here and wherever a registry
# is reachable. A stand-in carries the label agentainer.stand-in; an image of that name without
# it (pulled from a registry) is the real one and is never replaced.
STAND_IN_LABEL="agentainer.stand-in"
is_real_image() {
  local value
  [ -n "$(image_id "$1")" ] || return 1
  value="$(docker image inspect -f "{{ index .Config.Labels \"$STAND_IN_LABEL\" }}" "$1" 2>/dev/null || true)"
  [ "$value" != "true" ]
}

# build_stand_in IMAGE INPUTS CHECK...: `build` with the stand-in label; the caller has filled $ctx.
build_stand_in() {
  local image="$1" inputs="$2"
  shift 2
  extra_labels=(--label "$STAND_IN_LABEL=true")
  build "$image" "$ctx" "$inputs" "$@"
  extra_labels=()
}

image="node:20-slim"
if ! is_real_image "$image"; then
  base_id="$(image_id agentainer/node:local)"
  inputs="$({
    definition_manifest node-slim
    printf 'base %s\n' "$base_id"
  } | sha256sum | cut -d' ' -f1)"
  if ! up_to_date "$image" "$inputs"; then
    ctx="$(new_context node-slim)"
    install -m 0644 "$ROOT/images/node-slim/passwd" "$ROOT/images/node-slim/group" "$ctx/"
    build_stand_in "$image" "$inputs" sh -c 'id node >/dev/null && node -e 0'
  fi
fi

image="redis:7-alpine"
if ! is_real_image "$image"; then
  have redis-server || die "redis-server is missing: install Debian's redis-server (\`bash scripts/setup.sh\`)"
  redis_bin="$(readlink -f "$(command -v redis-server)")"
  redis_cli="$(readlink -f "$(command -v redis-cli)")"
  inputs="$({
    definition_manifest redis
    printf 'base %s\n' "$(image_id agentainer/busybox:local)"
    binary_manifest "$redis_bin"
    binary_manifest "$redis_cli"
  } | sha256sum | cut -d' ' -f1)"
  if ! up_to_date "$image" "$inputs"; then
    ctx="$(new_context redis)"
    stage_binary "$redis_bin" "$ctx/rootfs" /usr/local/bin/redis-server
    stage_binary "$redis_cli" "$ctx/rootfs" /usr/local/bin/redis-cli
    build_stand_in "$image" "$inputs" redis-server --version
  fi
fi

image="nats:2.9-alpine"
if ! is_real_image "$image"; then
  have nats-server || die "nats-server is missing: install Debian's nats-server (\`bash scripts/setup.sh\`)"
  nats_bin="$(readlink -f "$(command -v nats-server)")"
  inputs="$({
    definition_manifest nats
    printf 'base %s\n' "$(image_id agentainer/busybox:local)"
    binary_manifest "$nats_bin"
  } | sha256sum | cut -d' ' -f1)"
  if ! up_to_date "$image" "$inputs"; then
    ctx="$(new_context nats)"
    stage_binary "$nats_bin" "$ctx/rootfs" /usr/local/bin/nats-server
    build_stand_in "$image" "$inputs" nats-server --version
  fi
fi

# --- agentainer/flow:local: the project's own image (Dockerfile) ------------------------------------
# Built from a context holding exactly what .dockerignore lets in, plus the production
# node_modules (this machine's `node_modules`, pruned offline of dev dependencies), so the
# Dockerfile's `npm ci` is skipped and nothing is fetched. Its inputs: those files' contents,
# the lock file, and the base image.
FLOW_PATHS=(package.json package-lock.json tsconfig.json bin cli lib services gen sdk agents examples)
[ -d "$ROOT/node_modules" ] || die "node_modules is missing: run \`npm ci\` first"
image="agentainer/flow:local"
inputs="$({
  printf 'script %s\n' "$(sha "$ROOT/scripts/build-images.sh")"
  printf 'dockerfile %s\n' "$(sha "$ROOT/Dockerfile")"
  printf 'base %s\n' "$(image_id node:20-slim)"
  (cd "$ROOT" && find "${FLOW_PATHS[@]}" -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -d' ' -f1)"
if ! up_to_date "$image" "$inputs"; then
  ctx="$(mktemp -d "$work/flow.XXXXXX")"
  (cd "$ROOT" && cp -a "${FLOW_PATHS[@]}" Dockerfile "$ctx/")
  cp -a "$ROOT/node_modules" "$ctx/node_modules"
  (cd "$ctx" && npm prune --omit=dev --offline --no-audit --no-fund >"$ctx.prune.log" 2>&1) || {
    cat "$ctx.prune.log" >&2
    die "npm prune --omit=dev of the image's node_modules failed (see above)"
  }
  build "$image" "$ctx" "$inputs" --version
fi

# Images these builds replaced are left untagged: remove them (never one a container still uses).
if [ "$built_any" -eq 1 ]; then
  docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
fi
