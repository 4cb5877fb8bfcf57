#!/bin/sh
# Install everything evbus needs to build, run and test, on Debian 12.
# Uses sudo when not run as root. Safe to run again.
# prometheus is there for promtool (the tests check /metrics with it);
# libmicrohttpd-dev serves /metrics (the metrics plugin); clang and its
# libFuzzer runtime build the fuzz targets (tools/run-fuzz).
set -e
PKGS="build-essential autoconf automake libtool pkg-config
      libzmq3-dev libmsgpack-dev libconfig-dev libcurl4-openssl-dev libssl-dev
      libcunit1-dev libmicrohttpd-dev python3 python3-zmq python3-msgpack
      fiu-utils openssl prometheus clang libclang-rt-14-dev"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
# Node.js for the webhook tests' independent Standard Webhooks verifier
# (npm's standardwebhooks). Debian's nodejs + npm, unless a Node.js with
# npm is already installed (NodeSource's conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d "$(npm root -g 2>/dev/null)/standardwebhooks" ]; then
    $SUDO npm install -g --no-fund --no-audit --loglevel=error \
        standardwebhooks@1.1.1 >/dev/null
fi
echo "install-deps: done"
