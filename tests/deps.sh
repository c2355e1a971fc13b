#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages hostbeat needs to build and test, only the
# missing ones: one `apt-get update`, then one `apt-get install -y`.
set -euo pipefail

build=(build-essential pkg-config libpcap-dev libproc2-dev libcurl4-openssl-dev libjson-c-dev
       libyaml-dev)
test=(libcmocka-dev python3 python3-pytest clang-14 libclang-rt-14-dev tcpdump tshark
      nginx-light dnsmasq-base dnsutils curl iproute2 procps time)

missing=()
for p in "${build[@]}" "${test[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	echo "deps: all ${#build[@]}+${#test[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: not root; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${#missing[@]} packages"
