#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a scratch copy of its seed corpus, so that
# nothing is written into the source tree, with the target's dictionary of protocol keywords
# (tests/fuzz/NAME.dict for the corpus tests/fuzz/corpus/NAME) when it has one. On a crash,
# prints the input that caused it. The long campaign is campaign.sh (README.md).
set -u
exe=$1 seconds=$2 seeds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
dict=()
d="$(dirname "$(dirname "$seeds")")/$(basename "$seeds").dict"
[ -f "$d" ] && dict=(-dict="$d")
"$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
  -artifact_prefix="$work/" "$work/corpus" "$seeds"
rc=$?
if [ $rc -ne 0 ]; then
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -f "$f" ] && { echo "input that failed ($f):"; od -c "$f" | head -40; }
  done
fi
exit $rc
