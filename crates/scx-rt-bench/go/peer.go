// Command peer is the Go peer of scx-rt-bench: goroutine versions of the
// bench's workloads, standard library only.
//
// The bench (crates/scx-rt-bench/src/peers/go.rs) runs it as
//
//	go run peer.go WORKLOAD --case CASE --unit UNIT [--iters N] [--tasks N] [--reps R] ...
//
// with GOMAXPROCS and the CPU mask already set, and with every size
// resolved; the case and unit are printed back as given. It prints one
// row on stdout in the bench's line protocol (fields separated by TAB,
// "null" for a missing figure):
//
//	row WORKLOAD CASE go UNIT N MEAN P50 P99 P999
//
// Throughput rows (one figure per repetition) fill MEAN and, with two or
// more repetitions, P50 (the median); latency rows (ns) fill all four.
// Progress and errors go to stderr; a failure exits with status 1.
//
// bimodal prints its own lines instead of a row: one "req<TAB>LAT<TAB>LATE"
// per request in schedule order (ns: completion after the scheduled
// arrival, and how late the generator handed it over), then
// "span<TAB>NS" and "delay<TAB>WORKERS_NS<TAB>GENERATOR_NS" (run-delay
// over the point from /proc, the workers' threads summed); the bench
// builds its rows from them as for its own subjects.
//
// One workload is a server instead:
//
//	go run peer.go echo --buf N
//
// listens on 127.0.0.1:0, prints "listen<TAB>ADDR" on stdout, and echoes
// on every accepted connection (a goroutine each, reading up to N bytes
// and writing them back) until its stdin reaches end of file; then it
// exits with status 0. The bench's clients measure it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type options struct {
	caseName, unit     string
	iters, tasks, reps int
	// pingpong and ring: channel capacity
	capacity int
	// pingpong: "A,B" pins the pinger to CPU A and the echo to CPU B
	pin string
	// pingpong and wakeup: unrecorded first round trips / rounds
	warmup int
	// wakeup only
	messengers, workers, rounds int
	thinkNs                     int64
	// echo: each connection's read buffer, bytes
	buf int
	// bimodal: the mix, the arrival rate (per second), the schedule's
	// seed and the generator's CPU (-1: unpinned); --iters is the
	// request count
	shortNs, longNs int64
	longFrac, rate  float64
	seed            uint64
	genCPU          int
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: peer WORKLOAD --case CASE --unit UNIT [--iters N] [--tasks N] [--reps R]")
	}
	workload := os.Args[1]
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.caseName, "case", "", "case name to print")
	fs.StringVar(&o.unit, "unit", "", "unit to print")
	fs.IntVar(&o.iters, "iters", 0, "iterations per repetition")
	fs.IntVar(&o.tasks, "tasks", 0, "tasks per repetition")
	fs.IntVar(&o.reps, "reps", 1, "repetitions")
	fs.IntVar(&o.capacity, "cap", -1, "pingpong, ring: channel capacity")
	fs.StringVar(&o.pin, "pin", "", "pingpong: CPUs A,B of the pinger and the echo")
	fs.IntVar(&o.messengers, "messengers", 0, "wakeup: message goroutines")
	fs.IntVar(&o.workers, "workers", 0, "wakeup: workers per message goroutine")
	fs.IntVar(&o.rounds, "rounds", 0, "wakeup: rounds, warm-up included")
	fs.IntVar(&o.warmup, "warmup", 0, "pingpong, wakeup: unrecorded first rounds")
	fs.Int64Var(&o.thinkNs, "think-ns", 0, "wakeup: worker spin after each wake-up, ns")
	fs.IntVar(&o.buf, "buf", 0, "echo: read buffer per connection, bytes")
	fs.Int64Var(&o.shortNs, "short-ns", 0, "bimodal: short request, ns")
	fs.Int64Var(&o.longNs, "long-ns", 0, "bimodal: long request, ns")
	fs.Float64Var(&o.longFrac, "long-frac", 0, "bimodal: fraction of long requests")
	fs.Float64Var(&o.rate, "rate", 0, "bimodal: arrivals per second")
	fs.Uint64Var(&o.seed, "seed", 0, "bimodal: the schedule's seed")
	fs.IntVar(&o.genCPU, "gen-cpu", -1, "bimodal: the generator's CPU (-1: unpinned)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err.Error())
	}
	if workload == "echo" {
		need(o.buf)
		echoServer(o.buf)
		return
	}
	if o.caseName == "" || o.unit == "" {
		fail("--case and --unit are required")
	}
	fmt.Fprintf(os.Stderr, "go peer: %s on GOMAXPROCS=%d\n", workload, runtime.GOMAXPROCS(0))

	switch workload {
	case "switch":
		need(o.iters, o.reps)
		throughput(workload, o, 2*o.iters, repeat(o.reps, func() float64 {
			return nsPer(switchOnce(o.iters), 2*o.iters)
		}))
	case "spawn":
		need(o.tasks, o.reps)
		throughput(workload, o, o.tasks, repeat(o.reps, func() float64 {
			return nsPer(spawnOnce(o.tasks), o.tasks)
		}))
	case "pingpong":
		need(o.iters, o.capacity+1)
		latency(workload, o, pingpong(o.iters, o.warmup, o.capacity, pinCPUs(o.pin)))
	case "skynet":
		need(o.tasks, o.reps)
		throughput(workload, o, 1, repeat(o.reps, func() float64 {
			return ms(skynetOnce(int64(o.tasks)))
		}))
	case "ring":
		need(o.tasks-1, o.iters, o.reps, o.capacity+1)
		throughput(workload, o, o.iters, repeat(o.reps, func() float64 {
			return float64(o.iters) / ringOnce(o.tasks, o.iters, o.capacity).Seconds()
		}))
	case "yield-many":
		need(o.tasks, o.iters, o.reps)
		throughput(workload, o, 1, repeat(o.reps, func() float64 {
			return ms(yieldManyOnce(o.tasks, o.iters))
		}))
	case "chained-spawn":
		need(o.tasks, o.reps)
		throughput(workload, o, 1, repeat(o.reps, func() float64 {
			return us(chainOnce(o.tasks))
		}))
	case "wakeup":
		need(o.messengers, o.workers, o.rounds)
		latency(workload, o, wakeup(o))
	case "bimodal":
		need(o.iters, int(o.shortNs), int(o.longNs))
		if !(o.rate > 0) || o.longFrac < 0 || o.longFrac > 1 {
			fail("bimodal: --rate must be positive and --long-frac in [0, 1]")
		}
		bimodal(o)
	default:
		fail("no Go analogue of `" + workload + "`")
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "go peer: "+msg)
	os.Exit(1)
}

// need fails unless every size is at least 1.
func need(sizes ...int) {
	for _, s := range sizes {
		if s < 1 {
			fail("a size is missing or too small")
		}
	}
}

// num formats a figure for the line protocol.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func printRow(workload string, o options, n int64, mean float64, p50, p99, p999 string) {
	fmt.Printf("row\t%s\t%s\tgo\t%s\t%d\t%s\t%s\t%s\t%s\n",
		workload, o.caseName, o.unit, n, num(mean), p50, p99, p999)
}

// throughput prints a row from one figure per repetition, each measured
// over opsPerRep operations.
func throughput(workload string, o options, opsPerRep int, samples []float64) {
	sum := 0.0
	for _, s := range samples {
		sum += s
	}
	p50 := "null"
	if len(samples) >= 2 {
		p50 = num(median(samples))
	}
	n := int64(opsPerRep) * int64(len(samples))
	printRow(workload, o, n, sum/float64(len(samples)), p50, "null", "null")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// latency prints a row from latency samples in ns (nearest-rank
// percentiles).
func latency(workload string, o options, samples []int64) {
	if len(samples) == 0 {
		fail("no latency samples")
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	sum := 0.0
	for _, s := range samples {
		sum += float64(s)
	}
	q := func(p float64) string {
		i := int(math.Ceil(p*float64(len(samples)))) - 1
		if i < 0 {
			i = 0
		}
		return num(float64(samples[i]))
	}
	printRow(workload, o, int64(len(samples)), sum/float64(len(samples)), q(0.5), q(0.99), q(0.999))
}

func repeat(n int, f func() float64) []float64 {
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, f())
	}
	return out
}

func nsPer(d time.Duration, ops int) float64 { return float64(d.Nanoseconds()) / float64(ops) }
func ms(d time.Duration) float64             { return float64(d.Nanoseconds()) / 1e6 }
func us(d time.Duration) float64             { return float64(d.Nanoseconds()) / 1e3 }

// switchOnce: two goroutines each yield iters times (run with
// GOMAXPROCS=1, every Gosched hands the processor to the other).
func switchOnce(iters int) time.Duration {
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// spawnOnce: start tasks empty goroutines and wait for all of them.
func spawnOnce(tasks int) time.Duration {
	var wg sync.WaitGroup
	wg.Add(tasks)
	start := time.Now()
	for i := 0; i < tasks; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return time.Since(start)
}

// pinCPUs parses --pin ("A,B"); nil when empty.
func pinCPUs(s string) []int {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		fail("--pin needs two CPUs, A,B")
	}
	cpus := make([]int, 2)
	for i, p := range parts {
		c, err := strconv.Atoi(p)
		if err != nil || c < 0 || c >= 64*len(cpuMask{}) {
			fail("--pin: bad CPU `" + p + "`")
		}
		cpus[i] = c
	}
	return cpus
}

// cpuMask is a sched_setaffinity mask for up to 1024 CPUs.
type cpuMask [16]uint64

// lockToCPU binds the calling goroutine to its OS thread for good (the
// thread exits with the goroutine) and pins that thread to cpu.
func lockToCPU(cpu int) {
	runtime.LockOSThread()
	var mask cpuMask
	mask[cpu/64] |= 1 << (uint(cpu) % 64)
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0,
		uintptr(len(mask)*8), uintptr(unsafe.Pointer(&mask[0])))
	if errno != 0 {
		fail(fmt.Sprintf("pin to CPU %d: %v", cpu, errno))
	}
}

// pingpong: round trips over a channel of the given capacity each way,
// after warmup unrecorded ones; ns per round trip. With pin (A,B) the
// pinger runs on a locked OS thread pinned to CPU A and the echo on one
// pinned to CPU B; without, the Go scheduler places both.
func pingpong(iters, warmup, capacity int, pin []int) []int64 {
	ab := make(chan int, capacity)
	ba := make(chan int, capacity)
	go func() {
		if pin != nil {
			lockToCPU(pin[1])
		}
		for v := range ab {
			ba <- v
		}
	}()
	result := make(chan []int64)
	go func() {
		if pin != nil {
			lockToCPU(pin[0])
		}
		samples := make([]int64, 0, iters)
		for i := 0; i < warmup+iters; i++ {
			t := time.Now()
			ab <- i
			<-ba
			if i >= warmup {
				samples = append(samples, time.Since(t).Nanoseconds())
			}
		}
		close(ab)
		result <- samples
	}()
	return <-result
}

func skynet(c chan<- int64, num, size, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64, div)
	sub := size / div
	for i := int64(0); i < div; i++ {
		go skynet(rc, num+i*sub, sub, div)
	}
	var sum int64
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

// skynetOnce: the 10-ary tree with leaves leaves; the sum is checked.
func skynetOnce(leaves int64) time.Duration {
	c := make(chan int64, 1)
	start := time.Now()
	go skynet(c, 0, leaves, 10)
	sum := <-c
	d := time.Since(start)
	if want := leaves * (leaves - 1) / 2; sum != want {
		fail(fmt.Sprintf("skynet sum %d, expected %d", sum, want))
	}
	return d
}

// ringOnce: tasks goroutines in a cycle of channels of the given
// capacity pass one token carrying the hops left; the one that receives
// 0 signals the end.
func ringOnce(tasks, hops, capacity int) time.Duration {
	chans := make([]chan int, tasks)
	for i := range chans {
		chans[i] = make(chan int, capacity)
	}
	done := make(chan struct{})
	for i := 0; i < tasks; i++ {
		in, next := chans[i], chans[(i+1)%tasks]
		go func() {
			for left := range in {
				if left == 0 {
					close(done)
					return
				}
				next <- left - 1
			}
		}()
	}
	start := time.Now()
	chans[0] <- hops
	<-done
	d := time.Since(start)
	// The token is gone, so nobody sends any more: closing every channel
	// ends the goroutines still waiting.
	for _, c := range chans {
		close(c)
	}
	return d
}

// yieldManyOnce: tasks goroutines each yield yields times.
func yieldManyOnce(tasks, yields int) time.Duration {
	var wg sync.WaitGroup
	wg.Add(tasks)
	start := time.Now()
	for i := 0; i < tasks; i++ {
		go func() {
			defer wg.Done()
			for j := 0; j < yields; j++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func link(left int, done chan<- struct{}) {
	if left == 0 {
		done <- struct{}{}
		return
	}
	go link(left-1, done)
}

// chainOnce: a chain of tasks goroutines, each starting the next.
func chainOnce(tasks int) time.Duration {
	done := make(chan struct{}, 1)
	start := time.Now()
	go link(tasks-1, done)
	<-done
	return time.Since(start)
}

// wakeup: schbench's shape. Each message goroutine, every round, sends
// the time to each of its workers over a cap-1 channel, then waits for
// all their acks; a worker records now - stamp (after the warm-up
// rounds), spins thinkNs and acks.
func wakeup(o options) []int64 {
	think := time.Duration(o.thinkNs)
	results := make(chan []int64, o.messengers*o.workers)
	var workers, messengers sync.WaitGroup
	for m := 0; m < o.messengers; m++ {
		acks := make(chan struct{}, o.workers)
		txs := make([]chan time.Time, o.workers)
		for w := range txs {
			tx := make(chan time.Time, 1)
			txs[w] = tx
			workers.Add(1)
			go func() {
				defer workers.Done()
				lats := make([]int64, 0, o.rounds)
				round := 0
				for stamp := range tx {
					lat := time.Since(stamp).Nanoseconds()
					if round >= o.warmup {
						lats = append(lats, lat)
					}
					round++
					t := time.Now()
					for time.Since(t) < think {
					}
					acks <- struct{}{}
				}
				results <- lats
			}()
		}
		messengers.Add(1)
		go func() {
			defer messengers.Done()
			for r := 0; r < o.rounds; r++ {
				for _, tx := range txs {
					tx <- time.Now()
				}
				for range txs {
					<-acks
				}
			}
			for _, tx := range txs {
				close(tx)
			}
		}()
	}
	messengers.Wait()
	workers.Wait()
	close(results)
	var all []int64
	for l := range results {
		all = append(all, l...)
	}
	return all
}

// echoServer serves echo on 127.0.0.1:0 until stdin reaches end of file.
func echoServer(bufSize int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: " + err.Error())
	}
	fmt.Fprintf(os.Stderr, "go peer: echo on GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	// os.Stdout is unbuffered: the line is out when Printf returns.
	fmt.Printf("listen\t%s\n", ln.Addr().String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// EMFILE, a connection aborted before accept: go on.
				time.Sleep(time.Millisecond)
				continue
			}
			go echoConn(c, bufSize)
		}
	}()
	// Until the bench closes our stdin.
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		fail("stdin: " + err.Error())
	}
	ln.Close()
}

// echoConn writes back what it reads until the peer closes (TCP
// connections have TCP_NODELAY set by default in Go).
func echoConn(c net.Conn, bufSize int) {
	defer c.Close()
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// splitmix64, as the bench's schedule generator (same seed, same
// arrivals).
type splitMix64 struct{ s uint64 }

func (r *splitMix64) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// f64 is uniform in [0, 1) (53 bits).
func (r *splitMix64) f64() float64 {
	return float64(r.next()>>11) * (1.0 / float64(uint64(1)<<53))
}

// bimodalReq is one scheduled request: its arrival (ns after the start)
// and class.
type bimodalReq struct {
	at   int64
	long bool
}

// bimodalSchedule: n Poisson arrivals at rate per second, each long with
// probability longFrac (the bench's `schedule`).
func bimodalSchedule(longFrac, rate float64, n int, seed uint64) []bimodalReq {
	rng := splitMix64{seed}
	meanGap := 1e9 / rate
	t := 0.0
	reqs := make([]bimodalReq, n)
	for i := range reqs {
		t += -meanGap * math.Log(1.0-rng.f64())
		reqs[i] = bimodalReq{at: int64(t), long: rng.f64() < longFrac}
	}
	return reqs
}

// bimodalServe spins until the goroutine has had serviceNs of CPU: a gap
// between two clock reads over 1 µs was spent switched out and counts as
// 1 µs (the bench's `serve`). Go preempts it on its own (the runtime's
// 10 ms signal), with no preemption point to call.
func bimodalServe(serviceNs int64) {
	var done int64
	last := time.Now()
	for done < serviceNs {
		now := time.Now()
		gap := now.Sub(last).Nanoseconds()
		if gap > 1000 {
			gap = 1000
		}
		done += gap
		last = now
	}
}

// runDelay sums the run-delay (ns, /proc schedstat) of this process's
// threads, the one with thread id skip left out.
func runDelay(skip int) int64 {
	dir, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var sum int64
	for _, e := range dir {
		if tid, err := strconv.Atoi(e.Name()); err == nil && tid == skip {
			continue
		}
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 1 {
			if d, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				sum += d
			}
		}
	}
	return sum
}

// ownRunDelay is the calling thread's run-delay (ns).
func ownRunDelay() int64 {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	d, _ := strconv.ParseInt(f[1], 10, 64)
	return d
}

// bimodal: open-loop arrivals of spinning requests. A generator goroutine,
// locked to its OS thread (pinned to --gen-cpu when given, so it holds
// one of the GOMAXPROCS processors, the bench gives one more than the
// workers' CPUs), spins until each arrival and starts a goroutine for it,
// as a Go server starts one per request.
func bimodal(o options) {
	reqs := bimodalSchedule(o.longFrac, o.rate, o.iters, o.seed)
	n := len(reqs)
	lat := make([]int64, n)
	late := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	var endNs int64
	var mu sync.Mutex
	t0 := time.Now().Add(time.Millisecond)
	// The generator's thread id and the workers' run-delay at the start,
	// then the generator's own run-delay over the run.
	genTid := make(chan [2]int64, 1)
	genDelay := make(chan int64, 1)
	go func() {
		if o.genCPU >= 0 {
			lockToCPU(o.genCPU)
		} else {
			runtime.LockOSThread()
		}
		me := syscall.Gettid()
		genTid <- [2]int64{int64(me), runDelay(me)}
		d0 := ownRunDelay()
		for i, r := range reqs {
			at := t0.Add(time.Duration(r.at))
			for time.Now().Before(at) {
			}
			late[i] = time.Since(t0).Nanoseconds() - r.at
			go func(i int, r bimodalReq) {
				s := o.shortNs
				if r.long {
					s = o.longNs
				}
				bimodalServe(s)
				now := time.Since(t0).Nanoseconds()
				l := now - r.at
				if l < 1 {
					l = 1
				}
				lat[i] = l
				mu.Lock()
				if now > endNs {
					endNs = now
				}
				mu.Unlock()
				wg.Done()
			}(i, r)
		}
		genDelay <- ownRunDelay() - d0
	}()
	g := <-genTid
	wg.Wait()
	workers := runDelay(int(g[0])) - g[1]
	gen := <-genDelay
	first := int64(0)
	if n > 0 {
		first = reqs[0].at
	}
	w := bufioWriter()
	for i := range reqs {
		fmt.Fprintf(w, "req\t%d\t%d\n", lat[i], late[i])
	}
	fmt.Fprintf(w, "span\t%d\n", endNs-first)
	fmt.Fprintf(w, "delay\t%d\t%d\n", workers, gen)
	w.Flush()
}

// bufioWriter buffers stdout for the many lines of `bimodal`.
func bufioWriter() *bufio.Writer { return bufio.NewWriterSize(os.Stdout, 1<<16) }
