#!/usr/bin/env bash
# Instructions per operation of scx-rt under valgrind's callgrind: a
# performance signal that a shared, noisy machine does not blur.
#
# usage: benches/instructions.sh [--json] [--no-build]
#   --json      print one JSON object instead of the table
#   --no-build  use the existing target/release/scx-rt-bench
#   env BIN           the binary to measure (default
#                     target/release/scx-rt-bench; with --no-build, any
#                     build kept aside, for a before/after pair)
#   env ONLY          run only the rows whose name starts with this (e.g.
#                     ONLY=switch, ONLY=pingpong)
#   env IDLE_POLL_US  idle poll of the scx-rt workers in the main column,
#                     in microseconds (default 0: an idle worker sleeps at
#                     once)
#   env SLICE_TIMER   the runtime's slice-expiry mode (--slice-timer;
#                     default thread). Valgrind aborts when the default
#                     mode's expiry signal lands while a green stack is
#                     active (a long-running task, such as the spawn
#                     workload's spawner, takes that signal once per 20 ms
#                     slice), so the runs use the timer thread. The modes
#                     differ on a switch only in how a deadline is
#                     published (SLICE_TIMER=signal ONLY=switch measures the
#                     default's signalled 20 ms slices: a few instructions
#                     apart; SLICE_TIMER=poll its polled path).
#   env CLOCK         the scheduling clock: monotonic (default:
#                     SCX_RT_CLOCK=monotonic, the exact clock, see below)
#                     or tsc
#   env TRACE=1       record a scheduling trace in every run (scx-rt-bench
#                     --trace /dev/null --trace-capacity 4096): what tracing
#                     costs when on (Builder::trace). The rings are small
#                     enough to be full in both runs of a pair, so the
#                     trace written at shutdown is the same size in both
#                     and cancels; what remains is the recording.
#
# Method. Each figure comes from two callgrind runs, with N and with 2N
# operations, of
#
#   scx-rt-bench WORKLOAD --no-peers --reps 1 --cpus 0,1 --idle-poll-us P \
#       (--iters N | --tasks N) [--case CASE]
#
# (spawn and chained-spawn also with --cpus 0), and is
# (I(2N) - I(N)) / (operations(2N) - operations(N)). Start-up and
# tear-down (runtime build, thread starts, the report, pingpong's fixed
# 1,000-round-trip warm-up) are the same in both runs and cancel. I counts
# every instruction of every thread of the process, in user space
# (callgrind does not see the kernel): the workers, the slice-timer
# thread, the main thread, libc (futex and clock_gettime wrappers,
# malloc). An operation is:
#
#   switch          one yield_now handing the CPU to the other task
#                   (2 yielders x N iterations = 2N switches; 1 CPU)
#   spawn           spawn + run + join of one empty task, from a task
#                   (the row "warm", a repeated burst, runs 2 and 3
#                   repetitions of N tasks and divides the difference by
#                   N: a burst that finds the blocks and stacks of the
#                   previous ones, as a server's steady state does; the
#                   N/2N rows measure a first burst, which allocates)
#   chained-spawn   one link of a chain of tasks each spawning the next
#   pingpong        one round trip over two cap-1 channels, same-cpu (both
#                   tasks spawn_on CPU 0 of a 2-CPU runtime) or cross-cpu
#                   (CPU 0 and CPU 1), each timed with two clock reads and
#                   a histogram record
#
# Noise. Valgrind runs one thread at a time, and on two CPUs which worker
# runs a woken or new task depends on how it interleaves them; a
# cross-CPU hand-off costs more than a local one, so 2-CPU figures vary by
# a few per cent from run to run. Those rows take the median of three
# N/2N pairs and show the range; 1-CPU rows are exact to the instruction.
#
# Idle polling. An idle scx-rt worker spins (default 50 us) before it
# sleeps on its doorbell, and the spin executes instructions. What is
# polled during start-up cancels, but polling while the workload runs
# grows with N: a cross-CPU round trip leaves one side idle at every hop.
# Valgrind also runs one thread at a time, so a polling worker spins for
# its whole time slice while the other side waits to run. The main column
# therefore runs with --idle-poll-us 0 (IDLE_POLL_US): idle workers sleep
# at once, every cross-CPU wake-up is a futex wake, and the figure is the
# work of the operation. The last column runs with the runtime's default
# poll, spinning included (it varies from run to run with valgrind's
# scheduling). The same-CPU and 1-CPU figures hardly differ between the two.
#
# Atomic RMWs. Callgrind cannot count them directly; with --dump-instr=yes
# it gives the execution count of every instruction address, and objdump
# says which addresses hold a lock-prefixed instruction or an xchg with
# memory (implicitly locked). Their sum per operation is the atomics
# column (every object: the bench binary, libc, ld.so). Needs objdump;
# without it the column is left out.
#
# Runs in about three minutes on a 2-vCPU machine (each run < 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."

json=0
build=1
for arg in "$@"; do
    case "$arg" in
        --json) json=1 ;;
        --no-build) build=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "instructions.sh: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

poll=${IDLE_POLL_US:-0}
trace_args=()
trace_json=false
case "${TRACE:-0}" in
    0) ;;
    1)
        trace_args=(--trace /dev/null --trace-capacity 4096)
        trace_json=true
        ;;
    *)
        echo "instructions.sh: TRACE must be 0 or 1" >&2
        exit 2
        ;;
esac
slice_timer=${SLICE_TIMER:-thread}
# The scheduling clock reads the exact clock (scx_rt_sys::clock): under
# valgrind the TSC runs on in real time while the program crawls, so a
# worker re-anchors its TSC clock after nearly every sleep, about 100
# instructions (+77 on a same-CPU round trip, +174 cross-CPU) that a
# real run pays once per 2^21 cycles. The clock's own cost is a timing
# (sys_timings: 12 ns a TSC read, 30 ns a clock_gettime on the EPYC VM).
# CLOCK=tsc measures the TSC path anyway.
case "${CLOCK:-monotonic}" in
    monotonic) export SCX_RT_CLOCK=monotonic ;;
    tsc) unset SCX_RT_CLOCK ;;
    *)
        echo "instructions.sh: CLOCK must be monotonic or tsc" >&2
        exit 2
        ;;
esac
case "$poll" in
    '' | *[!0-9]*)
        echo "instructions.sh: IDLE_POLL_US must be a number of microseconds" >&2
        exit 2
        ;;
esac

command -v valgrind >/dev/null || {
    echo "instructions.sh: needs valgrind (callgrind)" >&2
    exit 1
}
have_objdump=0
command -v objdump >/dev/null && have_objdump=1

bin=${BIN:-target/release/scx-rt-bench}
if [ "$build" = 1 ]; then
    cargo build --release -p scx-rt-bench >&2
fi
[ -x "$bin" ] || {
    echo "instructions.sh: no $bin (build it, or drop --no-build)" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scx-rt-instr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# One row per figure, fields separated by "|":
#   name | workload arguments (@N: the size) | --cpus | N | operations per
#   unit of N | what one operation is | pairs of runs (the median is shown)
#   | also run with the default idle poll (yes/no)
# Rows on two CPUs vary from run to run (which CPU runs a woken or new
# task depends on how valgrind interleaves the threads): three pairs, the
# median shown with the range. 1-CPU rows are deterministic to the
# instruction: one pair.
rows=(
    "switch|switch --iters @N|0,1|50000|2|switch|1|no"
    "spawn|spawn --tasks @N|0,1|20000|1|task|3|yes"
    "spawn, 1 CPU|spawn --tasks @N|0|20000|1|task|1|no"
    "spawn, 1 CPU, warm|spawn --tasks @F --reps @R|0|20000|1|task|1|no"
    "chained-spawn|chained-spawn --tasks @N|0,1|10000|1|link|3|yes"
    "chained-spawn, 1 CPU|chained-spawn --tasks @N|0|10000|1|link|1|no"
    "pingpong same-cpu|pingpong --case same-cpu --iters @N|0,1|10000|1|round trip|1|yes"
    "pingpong cross-cpu|pingpong --case cross-cpu --iters @N|0,1|5000|1|round trip|3|yes"
)

# Addresses of atomic RMW instructions in one object: "0xADDR" per line.
atomic_addrs() {
    objdump -d --no-show-raw-insn "$1" 2>/dev/null |
        awk '/^ *[0-9a-f]+:\t(lock |xacquire lock |xrelease lock |xchg [^(]*\()/ {
                 a = $1; sub(/:$/, "", a); print "0x" a }'
}

# Total Ir of a callgrind output file.
total_ir() {
    awk '/^totals:/ { print $2; exit }' "$1"
}

# Executions of atomic RMW instructions in a callgrind output file written
# with --dump-instr=yes --compress-pos=no --compress-strings=no (addresses
# as in the object file, so objdump's match). The line after a "calls="
# line is the inclusive cost of a call, not an execution count: skipped.
atomic_count() {
    local out=$1 objs="$tmp/atomics.objs" obj key
    : >"$objs"
    while IFS= read -r obj; do
        [ -f "$obj" ] || continue
        key=$(printf '%s' "$obj" | cksum | cut -d' ' -f1)
        [ -f "$tmp/addr.$key" ] || atomic_addrs "$obj" >"$tmp/addr.$key"
        printf '%s\t%s\n' "$obj" "$tmp/addr.$key" >>"$objs"
    done < <(sed -n 's/^ob=//p' "$out" | sort -u)
    awk -v objs="$objs" '
        BEGIN {
            while ((getline line < objs) > 0) {
                split(line, f, "\t")
                while ((getline a < f[2]) > 0) atomic[f[1], a] = 1
                close(f[2])
            }
        }
        /^ob=/ { ob = substr($0, 4); next }
        /^calls=/ { skip = 1; next }
        /^0x/ {
            if (skip) { skip = 0; next }
            if ((ob, $1) in atomic) n += $2
        }
        END { printf "%d\n", n }
    ' "$out"
}

# run COUNT_ATOMICS ARGS...: one callgrind run of the bench; prints
# "IR ATOMICS" (ATOMICS "-" when not counted).
run() {
    local count=$1 out="$tmp/cg.out"
    shift
    local extra=() reps=(--reps 1)
    case " $* " in *" --reps "*) reps=() ;; esac
    if [ "$count" = 1 ]; then
        extra=(--dump-instr=yes --dump-line=no --compress-pos=no --compress-strings=no)
    fi
    if ! valgrind --tool=callgrind "${extra[@]}" --callgrind-out-file="$out" \
        "$bin" "$@" ${trace_args[@]+"${trace_args[@]}"} --no-peers ${reps[@]+"${reps[@]}"} >"$tmp/stdout" 2>"$tmp/stderr"; then
        echo "instructions.sh: callgrind run failed: $bin $* --no-peers ${reps[*]}" >&2
        tail -n 20 "$tmp/stderr" >&2
        exit 1
    fi
    local atomics=-
    if [ "$count" = 1 ]; then
        atomics=$(atomic_count "$out")
    fi
    echo "$(total_ir "$out") $atomics"
    rm -f "$out"
}

# pair COUNT_ATOMICS OPS "ARGS for N" "ARGS for 2N": prints the
# instructions and the atomics ("-": not counted) per operation.
pair() {
    local count=$1 ops=$2 ir1 at1 ir2 at2
    # The workload arguments are words without spaces: split on purpose.
    # shellcheck disable=SC2086
    read -r ir1 at1 <<<"$(run "$count" $3)"
    # shellcheck disable=SC2086
    read -r ir2 at2 <<<"$(run "$count" $4)"
    awk -v a="$ir1" -v b="$ir2" -v c="$at1" -v d="$at2" -v n="$ops" 'BEGIN {
        printf "%.0f ", (b - a) / n
        if (c == "-") print "-"; else printf "%.1f\n", (d - c) / n }'
}

# The median of the numbers given (an odd count), and their range.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
range() {
    if [ $# -lt 2 ]; then
        echo -
        return
    fi
    printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'
}

results=()
for row in "${rows[@]}"; do
    IFS='|' read -r name args cpus n mult unit pairs spin <<<"$row"
    case "$name" in "${ONLY:-}"*) ;; *) continue ;; esac
    ops=$((n * mult))
    a1="${args//@N/$n} --cpus $cpus --slice-timer $slice_timer"
    a2="${args//@N/$((2 * n))} --cpus $cpus --slice-timer $slice_timer"
    case "$args" in *@R*)
        # A repeated burst: N operations per repetition, two and three
        # repetitions; the third runs with what the first two left.
        a1="${args//@F/$n}"; a1="${a1//@R/2} --cpus $cpus --slice-timer $slice_timer"
        a2="${args//@F/$n}"; a2="${a2//@R/3} --cpus $cpus --slice-timer $slice_timer"
        ;;
    esac
    echo "callgrind: $name, N=$n and $((2 * n)), $pairs pair(s)" >&2
    works=()
    atoms=()
    for _ in $(seq "$pairs"); do
        read -r w a <<<"$(pair "$have_objdump" "$ops" "$a1 --idle-poll-us $poll" "$a2 --idle-poll-us $poll")"
        works+=("$w")
        atoms+=("$a")
    done
    work=$(median "${works[@]}")
    spread=$(range "${works[@]}")
    atomics=-
    if [ "$have_objdump" = 1 ]; then
        atomics=$(median "${atoms[@]}")
    fi
    dflt=-
    if [ "$spin" = yes ]; then
        read -r dflt _ <<<"$(pair 0 "$ops" "$a1" "$a2")"
    fi
    results+=("$name|$cpus|$unit|$n|$work|$spread|$atomics|$dflt")
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
num() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }
if [ "$json" = 1 ]; then
    printf '{"tool": "callgrind", "commit": "%s", "idle_poll_us": %s, "trace": %s, "results": [' "$commit" "$poll" "$trace_json"
    sep=
    for r in "${results[@]}"; do
        IFS='|' read -r name cpus unit n work spread atomics dflt <<<"$r"
        lo=null
        hi=null
        if [ "$spread" != - ]; then
            lo=${spread%-*}
            hi=${spread#*-}
        fi
        printf '%s\n  {"workload": "%s", "cpus": "%s", "per": "%s", "n": %s, "instructions": %s, "instructions_min": %s, "instructions_max": %s, "atomic_rmw": %s, "instructions_default_idle_poll": %s}' \
            "$sep" "$name" "$cpus" "$unit" "$n" "$work" "$lo" "$hi" "$(num "$atomics")" "$(num "$dflt")"
        sep=,
    done
    printf '\n]}\n'
    exit 0
fi

fmt='%-21s %-4s %-11s %6s %9s %-13s %7s %9s\n'
trace_label=
if [ "$trace_json" = true ]; then trace_label=", tracing on"; fi
printf '\ninstructions per operation under callgrind: (I(2N) - I(N)) / operations, commit %s%s\n\n' "$commit" "$trace_label"
# shellcheck disable=SC2059
printf "$fmt" "workload" "cpus" "per" "N" "instr" "(range)" "atomic" "instr"
# shellcheck disable=SC2059
printf "$fmt" "" "" "" "" "poll $poll" "" "RMW" "dflt poll"
for r in "${results[@]}"; do
    IFS='|' read -r name cpus unit n work spread atomics dflt <<<"$r"
    if [ "$spread" = - ]; then spread=; else spread="($spread)"; fi
    # shellcheck disable=SC2059
    printf "$fmt" "$name" "$cpus" "$unit" "$n" "$work" "$spread" "$atomics" "$dflt"
done
cat <<EOT

instr: every instruction of every thread, in user space, per operation,
  with idle workers sleeping at once (--idle-poll-us $poll); median of the
  pairs of runs, their range beside it.
atomic RMW: lock-prefixed instructions and xchg with memory, per operation.
dflt poll: the same with the runtime's default idle poll (50 us), idle
  spinning included.
EOT
