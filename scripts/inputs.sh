#!/usr/bin/env bash
# inputs.sh [-x REGEX] [--extra STRING] PATH... : prints one sha256 over the names and contents of
# the files under PATH (tracked and untracked, not ignored; each PATH a file or a directory, read
# as git does: directories recursively), without those whose name matches REGEX, and over STRING
# (versions of the tools that read them). scripts/once.sh keys a step's last pass with it.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude='^$' extra=''
while [ $# -gt 0 ]; do
	case $1 in
	-x) exclude=$2; shift 2 ;;
	--extra) extra+="$2"$'\n'; shift 2 ;;
	*) break ;;
	esac
done
{
	printf '%s' "$extra"
	git ls-files -co --exclude-standard -- "$@" | grep -v -E "$exclude" | LC_ALL=C sort -u |
		while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done | xargs -r -d '\n' sha256sum
} | sha256sum | cut -d' ' -f1
