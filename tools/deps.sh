#!/bin/sh
# deps.sh - make sure the build's Debian packages are here.
#   sh tools/deps.sh         libck, msgpack-c, cmocka (+ pkg-config);
#                            msgpack-c is for the layers to come, unused yet
#   sh tools/deps.sh cross   the aarch64 cross compiler and qemu-user
# Installs missing packages with apt-get when run as root; otherwise
# prints the exact command to run.
set -e
missing=""
need() { # need PACKAGE TEST-FILE
  [ -e "$2" ] || missing="$missing $1"
}
if [ "$1" = cross ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing="$missing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  command -v qemu-aarch64 >/dev/null 2>&1 || missing="$missing qemu-user"
else
  need libck-dev /usr/include/ck_ring.h
  need libmsgpack-dev /usr/include/msgpack.h
  need libcmocka-dev /usr/include/cmocka.h
  command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq $missing >&2
else
  echo "deps: missing$missing; run: sudo apt-get install -y$missing" >&2
  exit 1
fi
