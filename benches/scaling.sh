#!/usr/bin/env bash
# The figures only a machine with many cores can give, in one prepared run
# that fits a lent machine's time box (the device tool: 15 minutes a
# session, 10 a command, a bare machine with no network).
#
# usage: benches/scaling.sh [--bin PATH] [--out DIR] [--quick]
#   --bin PATH  the scx-rt-bench binary (default target/release/scx-rt-bench;
#               build it here and carry it: the lent machine cannot fetch
#               crates)
#   --out DIR   where the results go (default $OUT, else ./scaling-out):
#               log.txt (every step's table and notes) and scaling.tar.gz
#               (one JSON per step), two files, as the device tool returns
#               at most eight
#   --quick     tiny sizes (a smoke run of the script itself, seconds)
#   env SCALING_BUDGET_S  no step starts after this many seconds (default
#               420: the last step's own time box is 90 s, so the run ends
#               within about 8.5 minutes; the steps take about 3 minutes
#               on a 2-vCPU VM, at 2 CPUs)
#
# Steps, each under its own time box (a step that runs out or fails leaves
# a line "== STEP: FAILED: why" in the log, and the run goes on):
#
#   1. scaling: spawn, yield-many, skynet, ring, chained-spawn and wakeup on the
#      first 1, 2, 4, 8 and 16 usable CPUs (fewer where the machine has
#      fewer), scx-rt beside tokio and may (Go where `go` is installed),
#      --reps 3: how the default scheduler scales (issue 12 asks for 1 to
#      16 CPUs);
#   2. pinned-core latency: switch, pingpong and kick on the first two
#      CPUs; pingpong and kick on the first and the last usable CPU
#      (another core complex, on most machines);
#   3. bimodal at 80% load on all usable CPUs but the last, which the load
#      generator gets (issue 13: short p99 <= 50 us at 80%, Skyloft's
#      figure with 20 workers): fresh-first 30 us, 30 us slices, FIFO and
#      tokio, Skyloft's mix;
#   4. echo: the server on the first half of the CPUs, the clients on the
#      other half (issue 14: throughput and p99 against tokio, may and Go
#      at 64 and 1,000 connections).
#
# Run on a lent machine (the tool's `run`, carrying the binary), e.g.
#   cargo build --release -p scx-rt-bench      # here, first
#   run: bash benches/scaling.sh --bin target/release/scx-rt-bench
#        (carry: ["target/release/scx-rt-bench"], timeout_s: 570)
set -uo pipefail
cd "$(dirname "$0")/.."

bin=target/release/scx-rt-bench
out="${OUT:-scaling-out}"
quick=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
budget="${SCALING_BUDGET_S:-420}"
if [ ! -x "$bin" ]; then
    echo "scaling.sh: no executable $bin (build it: cargo build --release -p scx-rt-bench)" >&2
    exit 1
fi
mkdir -p "$out/json"
log="$out/log.txt"
: >"$log"
start=$(date +%s)

note() { echo "$*" | tee -a "$log"; }

# The CPUs this process may use, in order (the bench pins to them).
mapfile -t usable < <(
    allowed=$(grep -m1 Cpus_allowed_list /proc/self/status | awk '{print $2}')
    IFS=, read -ra parts <<<"$allowed"
    for p in "${parts[@]}"; do
        if [[ "$p" == *-* ]]; then seq "${p%-*}" "${p#*-}"; else echo "$p"; fi
    done
)
n=${#usable[@]}
list() { # the first $1 usable CPUs, comma-separated
    local IFS=,
    echo "${usable[*]:0:$1}"
}

note "scaling.sh: $(date -u +%FT%TZ), $(uname -r), $n usable CPUs ($(list "$n")), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
note "binary: $bin ($(stat -c %s "$bin") bytes); go: $(command -v go >/dev/null && go version || echo 'not installed (no Go rows)')"
# The topology, to read the sweep by: which of the first k CPUs are SMT
# siblings, and which share a last-level cache.
topo=""
for c in "${usable[@]}"; do
    t=/sys/devices/system/cpu/cpu$c/topology
    l3=$(cat /sys/devices/system/cpu/cpu$c/cache/index3/shared_cpu_list 2>/dev/null || echo ?)
    topo+=" $c:core$(cat $t/core_id 2>/dev/null || echo ?)/smt[$(cat $t/thread_siblings_list 2>/dev/null || echo ?)]/l3[$l3]"
done
note "topology (cpu:core/smt siblings/l3 sharers):$topo"

# step NAME BOX_S ARGS...: one bench invocation under a time box, its
# table into the log and its rows into json/NAME.json.
step() {
    local name="$1" box="$2"
    shift 2
    local now
    now=$(date +%s)
    if [ $((now - start)) -ge "$budget" ]; then
        note "== $name: skipped (budget of ${budget} s spent)"
        return
    fi
    note "== $name: $bin $* ($((now - start)) s in)"
    local sizes=()
    [ "$quick" -eq 1 ] && sizes=(--quick)
    timeout --kill-after=5 "$box" "$bin" "$@" ${sizes[@]+"${sizes[@]}"} \
        --json "$out/json/$name.json" >>"$log" 2>"$out/json/$name.err"
    local rc=$?
    grep -v '^\(spawn\|skynet\|ring\|yield-many\|chained-spawn\|pingpong\|kick\|bimodal\|echo\): ' \
        "$out/json/$name.err" | tail -5 >>"$log"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        note "== $name: FAILED: stopped by its ${box} s time box"
    elif [ "$rc" -ne 0 ]; then
        note "== $name: FAILED: exit status $rc"
    fi
}

# 1. Scaling sweep.
for k in 1 2 4 8 16; do
    [ "$k" -le "$n" ] || continue
    step "scale-$k" 90 spawn yield-many skynet ring chained-spawn wakeup --cpus "$(list "$k")" --reps 3
done
if [ "$n" -gt 16 ]; then
    step "scale-$n" 90 spawn yield-many skynet ring chained-spawn wakeup --cpus "$(list "$n")" --reps 3
fi

# 2. Pinned-core latency, near and far.
if [ "$n" -ge 2 ]; then
    step latency-near 60 switch pingpong kick --cpus "$(list 2)"
    [ "$n" -gt 2 ] && step latency-far 45 pingpong kick --cpus "${usable[0]},${usable[$((n - 1))]}"
fi

# 3. bimodal at 80% load, the generator on the last CPU.
if [ "$n" -ge 3 ]; then
    # 200,000 requests a policy: about a second at 80% of 15 CPUs.
    reqs=(--iters 200000)
    [ "$quick" -eq 1 ] && reqs=()
    step bimodal-80 90 bimodal --cpus "$(list $((n - 1)))" --load 0.8 \
        --case fresh30us,slice30us,fifo,tokio,skyloft ${reqs[@]+"${reqs[@]}"}
fi

# 4. echo, server and clients on separate halves.
if [ "$n" -ge 4 ]; then
    step echo 90 echo --cpus "$(list $((n / 2)))" --reps 1 --duration 500 \
        --case 64B-64conn,64B-1000conn,4KiB-64conn,4KiB-1000conn
fi

tar -czf "$out/scaling.tar.gz" -C "$out" json
rm -rf "$out/json"
note "scaling.sh: done in $(($(date +%s) - start)) s; results in $out (log.txt, scaling.tar.gz)"
