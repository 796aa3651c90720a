#!/usr/bin/env bash
# The long fuzz campaign: runs each libFuzzer target for RUNS executions (default 10 million)
# on a scratch copy of its corpus, then merges what it found back into tests/fuzz/corpus/NAME
# (minimised with -merge=1: only inputs that add coverage stay; files named by hand, not by
# their SHA-1, are seeds and regression inputs and always stay). One target at a time, niced,
# so that it shares a machine. Prints one summary line per target and appends it to the log.
#
#   tests/fuzz/campaign.sh [RUNS] [TARGET...]     (targets: the names of tests/fuzz/fuzz_*.cc)
#
# Environment: BUILD (default build-fuzz: a -Dfuzzing=true clang build, see dev.sh), NICE
# (default 15), LOG (default build-fuzz/campaign.log), KEEP=1 to leave the corpus unmerged,
# MAX_SECONDS to stop each target after that long even short of RUNS (a time-boxed campaign).
# A crash stops the campaign with the input's path and its bytes; nothing is merged then.
set -u
cd "$(dirname "$0")/../.."
runs=${1:-10000000}
shift || true
build=${BUILD:-build-fuzz}
log=${LOG:-$build/campaign.log}
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.cc; do t=${f#tests/fuzz/fuzz_}; targets+=("${t%.cc}"); done
fi

for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz-$t
  corpus=tests/fuzz/corpus/$t
  [ -x "$exe" ] || { echo "campaign: $exe is missing (ninja -C $build tests/fuzz/fuzz-$t)" >&2; exit 2; }
  work=$(mktemp -d)
  mkdir -p "$work/corpus"
  limit=()
  [ -n "${MAX_SECONDS:-}" ] && limit=(-max_total_time="$MAX_SECONDS")
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  before=$(ls "$corpus" | wc -l)
  start=$(date +%s)
  nice -n "${NICE:-15}" "$exe" -runs="$runs" -rss_limit_mb=2048 -print_final_stats=1 "${limit[@]}" "${dict[@]}" \
    -artifact_prefix="$work/" "$work/corpus" "$corpus" >"$work/log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  cp "$work/log" "$build/campaign-$t.log"
  if [ $rc -ne 0 ]; then
    echo "campaign: $t FAILED (exit $rc) after ${secs}s; log in $build/campaign-$t.log" >&2
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
      [ -f "$f" ] && { cp "$f" "$build/"; echo "input: $build/$(basename "$f")"; od -c "$f" | head -40; }
    done
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
  last=$(grep -E '^#[0-9]+' "$work/log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  after=$before
  if [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$corpus.new" && mkdir "$corpus.new"
    nice -n "${NICE:-15}" "$exe" -merge=1 -rss_limit_mb=2048 "$corpus.new" "$corpus" "$work/corpus" \
      >"$build/campaign-$t.merge.log" 2>&1 || { echo "campaign: merge of $t failed" >&2; exit 1; }
    for f in "$corpus"/*; do  # hand-named seeds stay, under their names
      name=$(basename "$f")
      [[ $name =~ ^[0-9a-f]{40}$ ]] && continue
      rm -f "$corpus.new/$(sha1sum <"$f" | cut -d' ' -f1)"
      cp "$f" "$corpus.new/$name"
    done
    rm -rf "$corpus" && mv "$corpus.new" "$corpus"
    after=$(ls "$corpus" | wc -l)
  fi
  line="$(date -u +%FT%TZ) $t runs=$execs secs=$secs exec/s=$speed cov=$cov ft=$ft corpus=$before->$after ($(du -sb "$corpus" | cut -f1) bytes)"
  echo "$line" | tee -a "$log"
  rm -rf "$work"
done
