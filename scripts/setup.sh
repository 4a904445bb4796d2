#!/usr/bin/env bash
# Makes this machine ready for the tests: the Debian packages they need, a running Docker engine,
# and the locally built images. Idempotent; quiet on success, one line per action taken.
# Used by scripts/test.sh (the README's test command) and by .ci/run.
#   bash scripts/setup.sh
# Redis and NATS are only installed here: the tests start their own servers on free ports.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# nats-server and dockerd live in sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/agentainer-dockerd.log}"
APT_LOG="/tmp/agentainer-setup-apt.log"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- Debian packages -----------------------------------------------------------------------------
# package -> how we know it is there
package_present() {
  case "$1" in
    docker.io) have docker && have dockerd ;;
    redis-server) have redis-server ;;
    nats-server) have nats-server ;;
    # The images need a statically linked busybox; Debian's plain `busybox` is dynamic.
    busybox-static)
      if have dpkg-query; then
        dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'
      else
        have busybox
      fi
      ;;
    docker-compose) have docker-compose || docker compose version >/dev/null 2>&1 ;;
    # The CLI's progress display is tested in a real terminal.
    tmux) have tmux ;;
    *) return 1 ;;
  esac
}

missing=()
for pkg in docker.io redis-server nats-server busybox-static docker-compose tmux; do
  package_present "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if is_root && have apt-get; then
    say "installing ${missing[*]} (apt-get; log: $APT_LOG)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$APT_LOG" 2>&1; then
      tail -n 30 "$APT_LOG" >&2
      die "apt-get could not install ${missing[*]} (full log: $APT_LOG)"
    fi
    for pkg in "${missing[@]}"; do
      package_present "$pkg" || die "$pkg is still missing after apt-get install"
    done
  else
    {
      echo "setup: missing: ${missing[*]}"
      echo "setup: install them, e.g. on Debian/Ubuntu:"
      echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
      echo "setup: then run this script again."
    } >&2
    exit 1
  fi
fi

# --- Docker engine -------------------------------------------------------------------------------
docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

dockerd_running() {
  if [ -f /var/run/docker.pid ]; then
    local pid
    pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then return 0; fi
  fi
  have pgrep && pgrep -x dockerd >/dev/null 2>&1
}

if ! docker_answers; then
  if dockerd_running; then
    say "waiting for the running dockerd to answer"
  elif [ -d /run/systemd/system ] && have systemctl && is_root; then
    say "starting docker (systemctl start docker)"
    systemctl start docker
  elif is_root; then
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid: its own session, so it outlives this script and the caller's process group.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  else
    die "the Docker engine does not answer (docker info) and we are not root to start it:" \
      "start it (e.g. \`sudo systemctl start docker\` or \`sudo dockerd &\`) and give your user" \
      "access to /var/run/docker.sock"
  fi
  for _ in $(seq 1 60); do
    docker_answers && break
    sleep 1
  done
  if ! docker_answers; then
    if is_root; then
      [ -f "$DOCKERD_LOG" ] && tail -n 30 "$DOCKERD_LOG" >&2
      die "the Docker engine did not answer within 60 s (log: $DOCKERD_LOG)"
    fi
    die "the Docker engine did not answer within 60 s: may your user use /var/run/docker.sock?"
  fi
fi

# --- Images --------------------------------------------------------------------------------------
if [ -f scripts/build-images.sh ]; then
  say "building images (scripts/build-images.sh)"
  bash scripts/build-images.sh
fi
