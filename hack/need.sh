#!/usr/bin/env bash
# hack/need.sh COMMAND:PACKAGE ...: installs each Debian PACKAGE whose
# COMMAND is missing (as root, with apt-get), so a fresh machine or CI gets
# what a make target uses. Without root it names the packages and fails.
set -euo pipefail
missing=()
for pair in "$@"; do
	cmd=${pair%%:*} pkg=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "missing: ${missing[*]} (install them: apt-get install -y ${missing[*]})" >&2
	exit 1
fi
echo "installing ${missing[*]} (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
	{ apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
