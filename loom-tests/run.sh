#!/usr/bin/env bash
# Runs the loom models group by group, each group (one test binary of
# loom-tests/tests) under its own time box, and prints per model the
# interleavings explored and per group the wall time.
#
#   loom-tests/run.sh [GROUP...]     default: every file in loom-tests/tests
#
# LOOM_GROUP_TIMEOUT (seconds, default 90) bounds each group's run; the
# build is not counted. LOOM_MAX_PREEMPTIONS defaults to 2. Exit status: 0
# when every group passed, else 1 (a time-out counts as a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg scx_rt_loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
box="${LOOM_GROUP_TIMEOUT:-90}"
test_cmd=(cargo test -p loom-tests --release --target-dir target/loom)

if [ "$#" -gt 0 ]; then
    groups=("$@")
else
    groups=()
    for f in loom-tests/tests/*.rs; do
        groups+=("$(basename "$f" .rs)")
    done
fi

"${test_cmd[@]}" --no-run || exit 1

failed=()
total_start=$(date +%s)
for g in "${groups[@]}"; do
    start=$(date +%s)
    # Without --foreground, timeout signals its whole process group, so the
    # test binary cargo started is stopped too.
    timeout --kill-after=10 "$box" "${test_cmd[@]}" --test "$g" -- --nocapture
    rc=$?
    secs=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        echo "loom group $g: ok in ${secs} s"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "loom group $g: TIMED OUT after ${secs} s (box ${box} s)"
        failed+=("$g")
    else
        echo "loom group $g: FAILED (exit $rc) in ${secs} s"
        failed+=("$g")
    fi
done
echo "loom models: ${#groups[@]} groups in $(($(date +%s) - total_start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "loom groups that failed: ${failed[*]}"
    exit 1
fi
