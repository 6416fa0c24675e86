#!/bin/sh
# run.sh [NAME...] - run the benchmark programs, each in its own process
# (so that peak RSS figures do not mix), under a timeout.
#
#   BUILD=build/release   where the programs are ($BUILD/bench/<name>)
#   BENCH_SCALE, WORKERS, COALESCE_NS, SPAWN_BACKLOG  passed through to every program
#   BENCH_LIMIT=300       seconds before a program is killed as hung
#
# stdout carries only the programs' JSON lines; progress, the machine's
# speed (bench/calibrate.c) and the summary go to stderr.  Exits non-zero
# if any program fails or is missing.
build=${BUILD:-build/release}
limit=${BENCH_LIMIT:-300}
dir=$build/bench

# The workloads that are a program run with an argument.
variants() { # variants PROGRAM
  case $1 in cancel) echo cancel_sequential ;; esac
}
run_line() { # run_line NAME: the program and its argument
  case $1 in cancel_sequential) echo "cancel sequential" ;; *) echo "$1" ;; esac
}

if [ $# -eq 0 ]; then
  for p in "$dir"/*; do
    [ -f "$p" ] && [ -x "$p" ] && [ "${p##*/}" != calibrate ] &&
      set -- "$@" "${p##*/}" $(variants "${p##*/}")
  done
  [ $# -gt 0 ] || { echo "run.sh: no benchmarks in $dir" >&2; exit 1; }
fi

# `timeout` is coreutils, not POSIX: run without a limit if it is absent.
if command -v timeout >/dev/null 2>&1; then
  limiter="timeout -k 10 $limit"
else
  limiter=""
fi

[ -x "$dir/calibrate" ] && "$dir/calibrate" >&2

passed=0; failed=0; failures=""
for name in "$@"; do
  line=$(run_line "$name")
  prog=$dir/${line%% *}
  args=${line#"${line%% *}"} # "" or " ARG"
  if [ ! -x "$prog" ]; then
    echo "run.sh: no benchmark $prog" >&2
    failed=$((failed + 1)); failures="$failures $name(missing)"
    continue
  fi
  echo "== $name (BENCH_SCALE=${BENCH_SCALE:-1})" >&2
  if $limiter "$prog" $args; then
    passed=$((passed + 1))
  else
    rc=$?
    [ "$rc" -eq 124 ] && echo "run.sh: $name timed out after ${limit}s" >&2
    failed=$((failed + 1)); failures="$failures $name(exit $rc)"
  fi
done
echo "bench: $passed passed, $failed failed" >&2
[ "$failed" -eq 0 ] || { echo "bench: failed:$failures" >&2; exit 1; }
