#!/usr/bin/env bash
# Install what stackha's tests and lab need on a Debian bookworm machine: the real
# ZooKeeper, nginx, keepalived and friends from Debian, and the Python venv.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# openjdk-17-jdk-headless: javac builds the driver that asks the real MyCat about config files.
# gcc, libc6-dev: the hostile-bundle test builds a shared object whose constructor must never run.
APT_PACKAGES=(zookeeper nginx-light keepalived iproute2 nftables tcpdump
              mariadb-server mariadb-client python3-venv procps psmisc iputils-ping arping
              openjdk-17-jdk-headless gcc libc6-dev)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -q
    # The packages' own services are not wanted: the tests start their own instances.
    echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
fi

# keepalived runs scripts as this user under enable_script_security.
id keepalived_script >/dev/null 2>&1 || $SUDO useradd --system --no-create-home \
    --shell /usr/sbin/nologin keepalived_script

if [ ! -x .venv/bin/python ]; then
    # Debian's python, not a per-user one: keepalived runs the health checks from this venv
    # as the unprivileged script user, who must be able to execute its interpreter.
    /usr/bin/python3 -m venv .venv
fi
if ! .venv/bin/python -c "import stackha, kazoo, pyroute2, docker, yaml, pytest" 2>/dev/null \
        || [ pyproject.toml -nt .venv/.stackha-installed ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".[dev,lab]"
    touch .venv/.stackha-installed
fi
echo "dependencies ready"
