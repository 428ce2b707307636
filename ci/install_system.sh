#!/usr/bin/env bash
# Debian packages the tests and checks use: clang (+ its sanitizer/libFuzzer runtime), wrk, curl,
# openssl (the TLS tests make their certificates with it),
# nginx and haproxy (deployment tests), libev-dev (bjoern in the benchmark harness). Installs only what is missing.
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v taskset >/dev/null || need+=(util-linux)
[ -e /usr/include/ev.h ] || need+=(libev-dev)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ci: missing Debian packages ${need[*]} and not root" >&2
        exit 1
    fi
    echo "ci: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
