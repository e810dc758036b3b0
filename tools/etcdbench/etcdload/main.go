// Command etcdload drives a running etcd v3 server with closed-loop Put
// clients and prints throughput and latency in the shape of
// `coco bench --json` (committed_tx_per_s, p50_ms, p99_ms, ...), so the two
// can be compared on the same machine.
//
// It mirrors coco bench's method: C workers spread over N gRPC connections
// (like `benchmark put --clients 64 --conns 8` from etcd's own tools), each
// a closed loop of Put with a fixed value of --size bytes and a unique key;
// the run lasts --duration, warm-up included; a Put counts when it completes
// after the warm-up and before the end, and its latency is send-to-reply.
// An etcd Put returns after the entry is committed by raft (which, on a
// single member, means appended to the WAL and fsynced) and applied.
//
// --endpoint may list several members of one cluster, comma-separated. The
// connections then go to the members in turn (connection j to member j mod
// E, as etcd's `benchmark` dials them) and the workers are spread evenly over
// the members (worker i to member i mod E, as `coco bench` spreads its
// clients over the nodes), each member's workers over that member's
// connections. Each connection stays on its member; a Put sent to a follower
// is forwarded by it to the leader, which is what etcd does for any client.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
)

// Result has the fields of coco bench's JSON result that apply to etcd.
type Result struct {
	System      string `json:"system"`
	Endpoint    string `json:"endpoint"`
	TLS         bool   `json:"tls"`
	Clients     int    `json:"clients"`
	Connections int    `json:"connections"`
	Size        int    `json:"size"`

	DurationS float64 `json:"duration_s"` // measured window, warm-up excluded
	WarmupS   float64 `json:"warmup_s"`

	Executed        uint64  `json:"executed"`
	Committed       uint64  `json:"committed"`
	ExecutedTxPerS  float64 `json:"executed_tx_per_s"`
	CommittedTxPerS float64 `json:"committed_tx_per_s"`

	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`

	Errors        map[string]uint64 `json:"errors"`
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
}

type worker struct {
	index    int
	c        *clientv3.Client
	lat      []time.Duration
	errs     map[string]uint64
	examples map[string]string
}

func main() {
	var (
		endpoint = flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint (host:port), or several members of one cluster, comma-separated")
		clients  = flag.Int("clients", 64, "concurrent closed-loop clients")
		conns    = flag.Int("conns", 8, "gRPC connections the clients are spread over (round-robin)")
		duration = flag.Duration("duration", 10*time.Second, "length of the run, warm-up included")
		warmup   = flag.Duration("warmup", 0, "start of the run left out of the statistics (0: 10% of --duration, at most 1s)")
		size     = flag.Int("size", 100, "bytes per value")
		timeout  = flag.Duration("timeout", 10*time.Second, "per-Put timeout")
		asJSON   = flag.Bool("json", false, "print one JSON object instead of text")
		tlsInfo  transport.TLSInfo
	)
	flag.StringVar(&tlsInfo.TrustedCAFile, "cacert", "", "CA bundle to verify the server with (enables TLS)")
	flag.StringVar(&tlsInfo.CertFile, "cert", "", "client certificate for TLS client authentication")
	flag.StringVar(&tlsInfo.KeyFile, "key", "", "client private key for TLS client authentication")
	flag.Parse()
	if *clients < 1 || *conns < 1 || *size < 0 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "etcdload: --clients and --conns must be ≥ 1, --size ≥ 0, --duration > 0")
		os.Exit(2)
	}
	endpoints := strings.Split(*endpoint, ",")
	for _, e := range endpoints {
		if e == "" {
			fmt.Fprintln(os.Stderr, "etcdload: empty endpoint in --endpoint")
			os.Exit(2)
		}
	}
	if *clients < len(endpoints) {
		fmt.Fprintln(os.Stderr, "etcdload: --clients must be at least the number of endpoints")
		os.Exit(2)
	}
	*conns = max(*conns, len(endpoints)) // at least one connection per member
	if *conns > *clients {
		*conns = *clients
	}
	if *warmup == 0 {
		*warmup = min(*duration/10, time.Second)
	}
	if *warmup >= *duration {
		fmt.Fprintln(os.Stderr, "etcdload: --warmup must be shorter than --duration")
		os.Exit(2)
	}
	var tlsCfg *tls.Config
	if tlsInfo.TrustedCAFile != "" || tlsInfo.CertFile != "" {
		var err error
		if tlsCfg, err = tlsInfo.ClientConfig(); err != nil {
			fmt.Fprintln(os.Stderr, "etcdload: TLS:", err)
			os.Exit(2)
		}
	}
	res, err := run(endpoints, tlsCfg, *clients, *conns, *size, *duration, *warmup, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdload:", err)
		os.Exit(1)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		fmt.Printf("etcd %s: %d clients over %d conns, %d-byte values, %.1fs measured\n",
			res.Endpoint, res.Clients, res.Connections, res.Size, res.DurationS)
		fmt.Printf("committed: %d (%.0f puts/s)\nlatency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n",
			res.Committed, res.CommittedTxPerS, res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs, res.MeanMs)
		if len(res.Errors) > 0 {
			fmt.Printf("errors: %v\n", res.Errors)
		}
	}
	if res.Committed == 0 {
		fmt.Fprintln(os.Stderr, "etcdload: no Put succeeded during the measured window")
		os.Exit(1)
	}
}

func run(endpoints []string, tlsCfg *tls.Config, clients, nconns, size int, duration, warmup, timeout time.Duration) (*Result, error) {
	// Connect (and prove each connection works) before the clock starts.
	cs := make([]*clientv3.Client, 0, nconns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for j := range nconns {
		endpoint := endpoints[j%len(endpoints)]
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{endpoint},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
			TLS:         tlsCfg,
		})
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", endpoint, err)
		}
		cs = append(cs, c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Get(ctx, "etcdload-probe")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("probe %s: %w", endpoint, err)
		}
	}
	// Worker i goes to member e = i mod E and, as the k-th worker there
	// (k = i div E), to that member's connection k mod (its connections).
	// With one endpoint this is connection i mod nconns.
	byMember := make([][]*clientv3.Client, len(endpoints))
	for j, c := range cs {
		byMember[j%len(endpoints)] = append(byMember[j%len(endpoints)], c)
	}
	workers := make([]*worker, clients)
	for i := range workers {
		mc := byMember[i%len(endpoints)]
		workers[i] = &worker{index: i, c: mc[(i/len(endpoints))%len(mc)], errs: map[string]uint64{}, examples: map[string]string{},
			lat: make([]time.Duration, 0, 1<<14)}
	}
	val := strings.Repeat("x", size)

	start := time.Now()
	warmEnd, end := start.Add(warmup), start.Add(duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for k := uint64(0); ; k++ {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				// Distinct keys across workers without shared state.
				key := fmt.Sprintf("etcdload/%012d", k*uint64(clients)+uint64(w.index)+1)
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				_, err := w.c.Put(ctx, key, val)
				cancel()
				t1 := time.Now()
				if !t1.Before(end) {
					return // finished after the end: not part of the run
				}
				if err != nil {
					code := classify(err)
					if w.errs[code]++; w.errs[code] == 1 {
						w.examples[code] = err.Error()
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if t1.Before(warmEnd) {
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()

	window := duration - warmup
	res := &Result{
		System: "etcd", Endpoint: strings.Join(endpoints, ","), TLS: tlsCfg != nil, Clients: clients, Connections: len(cs), Size: size,
		DurationS: window.Seconds(), WarmupS: warmup.Seconds(),
		Errors: map[string]uint64{}, ErrorExamples: map[string]string{},
	}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		for code, n := range w.errs {
			res.Errors[code] += n
			if _, ok := res.ErrorExamples[code]; !ok {
				res.ErrorExamples[code] = w.examples[code]
			}
		}
	}
	slices.Sort(all)
	n := uint64(len(all))
	res.Executed, res.Committed = n, n
	res.ExecutedTxPerS = float64(n) / window.Seconds()
	res.CommittedTxPerS = res.ExecutedTxPerS
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if n > 0 {
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		res.P50Ms, res.P90Ms, res.P99Ms = ms(quantile(all, 0.5)), ms(quantile(all, 0.9)), ms(quantile(all, 0.99))
		res.MaxMs, res.MeanMs = ms(all[n-1]), ms(sum/time.Duration(n))
	}
	return res, nil
}

// quantile is the nearest-rank q-quantile of sorted (non-empty).
func quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	r := int(float64(n)*q + 0.999999999) // ceil, robust to 0.9*100 rounding
	return sorted[min(max(r, 1), n)-1]
}

func classify(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "Timeout"
	}
	if s, ok := status.FromError(err); ok {
		return "grpc_" + s.Code().String()
	}
	return "Transport"
}
