#!/bin/sh
# run.sh BUILD_DIR TEST... - run each suite as its own process under a
# timeout (longer for sanitizer builds), then print a one-line summary.
build=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
case "$build" in
  *tsan*) limit=600 ;;
  *asan*) limit=400 ;;
  *) limit=240 ;;
esac
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$here/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
passed=0; failed=0; failures=""
for t in "$@"; do
  echo "== $t"
  if timeout -k 10 "$limit" "$t"; then
    passed=$((passed + 1))
  else
    rc=$?
    failed=$((failed + 1)); failures="$failures $t(exit $rc)"
  fi
done
echo "$build: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failed:$failures"; exit 1; }
