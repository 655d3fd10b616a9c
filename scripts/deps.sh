#!/usr/bin/env bash
# Installs what Bramble's lab and tests need on Debian (idempotent). Run as root.
set -euo pipefail
need=()
command -v bird >/dev/null || need+=(bird2)
command -v gobgpd >/dev/null || need+=(gobgpd)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
[[ -x /usr/lib/cni/ptp ]] || need+=(containernetworking-plugins)
command -v sysctl >/dev/null || need+=(procps)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v openssl >/dev/null || need+=(openssl)   # throw-away etcd TLS certificates in tests
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
if ((${#need[@]})) || [[ "${BRAMBLE_APT_UPDATE:-}" == 1 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ((${#need[@]})); then
        apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
fi
# Debian's bird2 package may start a system BIRD; Bramble's tests run their own, in namespaces.
# Likewise etcd: the tests start their own members.
for unit in bird etcd; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl stop "$unit" || true
    fi
done
command -v cargo >/dev/null || { echo "deps.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
