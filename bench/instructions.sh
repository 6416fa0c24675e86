#!/bin/sh
# instructions.sh [BUILD] - instructions per operation on the hot paths,
# counted by Valgrind's callgrind, for comparing two builds.
#
#   BUILD=build/release   where the programs are ($BUILD/bench/<name>)
#
# Times on a shared VM move with the machine: here a loop of independent
# adds took 182-337 ms from run to run while a chain of dependent ones
# took 224-238 (the core's other hyperthread belongs to someone else).
# A message's path runs many instructions per cycle, so it is the kind
# that slows down.  Instruction counts do not move, and for that kind of
# code fewer instructions is faster in every phase (docs/benchmarking.md).
#
# Each figure is the difference between two runs of different sizes,
# divided by the difference in operations, so that start-up and shutdown
# cancel out.  stdout: one line per figure.
build=${1:-${BUILD:-build/release}}
command -v valgrind >/dev/null 2>&1 || { echo "instructions.sh: needs valgrind" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# count PROGRAM THREAD SCALE [VAR=VALUE...]: instructions run by one
# thread (1 is the main thread) or by all of them (`all`).
count() {
  prog=$1 thread=$2 scale=$3
  shift 3
  env BENCH_SCALE="$scale" "$@" valgrind --tool=callgrind --separate-threads=yes \
      --callgrind-out-file="$tmp/cg.out" "$build/bench/$prog" >/dev/null 2>&1 ||
    { echo "instructions.sh: $prog failed under valgrind" >&2; exit 1; }
  if [ "$thread" = all ]; then
    cat "$tmp"/cg.out-* | awk '/^summary:/ { s += $2 } END { print s }'
  else
    awk '/^summary:/ { print $2 }' "$tmp/cg.out-0$thread"
  fi
  rm -f "$tmp"/cg.out*
}

# per WHAT UNIT PROGRAM THREAD OPS_AT_SCALE_1 [VAR=VALUE...]
per() {
  what=$1 unit=$2 prog=$3 thread=$4 ops=$5
  shift 5
  small=$(count "$prog" "$thread" 0.05 "$@") || exit 1
  large=$(count "$prog" "$thread" 0.1 "$@") || exit 1
  awk -v w="$what" -v u="$unit" -v s="$small" -v l="$large" -v n="$ops" \
      'BEGIN { printf "%s %.1f instructions/%s\n", w, (l - s) / (n * 0.05), u }'
}

per "pingpong, one worker:" roundtrip pingpong all 1000000 WORKERS=1
per "ring, one worker:" hop ring all 10000000 WORKERS=1
per "forkjoin, the main thread's sends:" message forkjoin 1 6400000
per "spawn, the main thread (its spawns and its exit probes):" actor spawn 1 1000000
per "spawn, every thread:" actor spawn all 1000000
