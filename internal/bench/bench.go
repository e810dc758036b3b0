package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("bench: invalid config")

// WaitMode says whether each write waits for commit.
type WaitMode string

const (
	// WaitCommit: every write asks the node to answer once committed, so
	// latency is commit latency and every answered write is committed.
	WaitCommit WaitMode = "commit"
	// WaitNone: writes are answered once executed; after the run the bench
	// waits (bounded) for the last one to commit to count committed ones.
	WaitNone WaitMode = "none"
)

// Defaults for the zero values of Config fields.
const (
	DefaultClientsPerConn = 8
	DefaultCommitTimeout  = 30 * time.Second
	maxWarmup             = time.Second
)

// drainGrace bounds how long in-flight writes may finish after the end of
// the run before they are cancelled. They are not counted either way; it
// only spares the nodes a burst of cancelled streams.
const drainGrace = 5 * time.Second

// Config describes one run.
type Config struct {
	// Nodes are the RPC addresses written to; workers are spread over them
	// round-robin.
	Nodes []string
	// ServiceCertPEM is the pinned service certificate; CertPEM and KeyPEM
	// are the user identity the writes are made as.
	ServiceCertPEM, CertPEM, KeyPEM []byte
	// Clients is the number of closed-loop workers (≥ 1).
	Clients int
	// Duration is the whole run, warm-up included (> 0).
	Duration time.Duration
	// Warmup is excluded from the statistics; zero means 10% of Duration,
	// at most one second.
	Warmup time.Duration
	// Size is the exact byte length of each message (≥ 0).
	Size int
	// Scope is the logging table written to.
	Scope client.Scope
	// Wait selects WaitCommit or WaitNone.
	Wait WaitMode
	// HTTP2 makes workers share HTTP/2 connections, ClientsPerConn workers
	// each; otherwise every worker has its own HTTP/1.1 keep-alive
	// connection.
	HTTP2 bool
	// ClientsPerConn is how many workers share one HTTP/2 connection; zero
	// means DefaultClientsPerConn. Ignored without HTTP2.
	ClientsPerConn int
	// CommitTimeout bounds the wait for the last write to commit with
	// WaitNone; zero means DefaultCommitTimeout.
	CommitTimeout time.Duration
}

// Result is the outcome of a run. Throughputs and latencies cover the
// measured window (the run after the warm-up); Errors counts every failed
// write of the whole run, warm-up included, keyed by the node's error code or
// by Timeout, Transport, BadResponse or HTTP<status> when there is none.
type Result struct {
	Nodes       int    `json:"nodes"`
	Clients     int    `json:"clients"`
	Connections int    `json:"connections"`
	Protocol    string `json:"protocol"`
	Size        int    `json:"size"`
	Scope       string `json:"scope"`
	Wait        string `json:"wait"`

	DurationS float64 `json:"duration_s"`
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

	// LastTxID is the highest TxID written in the window. With WaitNone,
	// CommitWaitMs is how long after the end it took to commit, and
	// CommitWaitError says why committed txs could not all be confirmed.
	LastTxID        string  `json:"last_transaction_id,omitempty"`
	CommitWaitMs    float64 `json:"commit_wait_ms,omitempty"`
	CommitWaitError string  `json:"commit_wait_error,omitempty"`
}

// Validate reports every problem with cfg at once, wrapped in ErrConfig.
func (cfg *Config) Validate() error {
	var bad []string
	if len(cfg.Nodes) == 0 {
		bad = append(bad, "no nodes")
	}
	if cfg.Clients < 1 {
		bad = append(bad, fmt.Sprintf("clients %d < 1", cfg.Clients))
	}
	if cfg.Duration <= 0 {
		bad = append(bad, fmt.Sprintf("duration %v ≤ 0", cfg.Duration))
	}
	if cfg.Warmup < 0 || (cfg.Duration > 0 && cfg.Warmup >= cfg.Duration) {
		bad = append(bad, fmt.Sprintf("warm-up %v not in [0, duration)", cfg.Warmup))
	}
	if cfg.Size < 0 {
		bad = append(bad, fmt.Sprintf("size %d < 0", cfg.Size))
	}
	if cfg.Scope != client.Private && cfg.Scope != client.Public {
		bad = append(bad, fmt.Sprintf("scope %q is neither private nor public", string(cfg.Scope)))
	}
	if cfg.Wait != WaitCommit && cfg.Wait != WaitNone {
		bad = append(bad, fmt.Sprintf("wait %q is neither commit nor none", string(cfg.Wait)))
	}
	if cfg.ClientsPerConn < 0 {
		bad = append(bad, fmt.Sprintf("clients per connection %d < 0", cfg.ClientsPerConn))
	}
	if cfg.CommitTimeout < 0 {
		bad = append(bad, fmt.Sprintf("commit timeout %v < 0", cfg.CommitTimeout))
	}
	if bad != nil {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(bad, "; "))
	}
	return nil
}

// payload returns exactly size bytes that need no JSON escaping.
func payload(size int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.Grow(size)
	for i := range size {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// plan is what every worker reads; it is immutable once workers start.
type plan struct {
	clients      int
	scope        client.Scope
	opt          client.WriteOptions
	msg          string
	warmEnd, end time.Time
}

// worker is one closed-loop client; it owns its statistics.
type worker struct {
	index    int
	c        *client.Client
	hist     histogram
	errs     map[string]uint64
	examples map[string]string
	views    []viewCount // WaitNone: txs counted per view
}

// viewCount tracks, for one view, how many counted txs it holds and the
// highest seqno among them: if that one commits, all of them did.
type viewCount struct {
	last  client.TxID
	count uint64
}

// Run executes one benchmark. It returns ctx's error if ctx ends first; a
// run in which every write failed still returns its Result (see Errors).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	perConn := cfg.ClientsPerConn
	switch {
	case !cfg.HTTP2:
		perConn = 1
	case perConn == 0:
		perConn = DefaultClientsPerConn
	}
	warmup := cfg.Warmup
	if warmup == 0 {
		warmup = min(cfg.Duration/10, maxWarmup)
	}
	commitTimeout := cfg.CommitTimeout
	if commitTimeout == 0 {
		commitTimeout = DefaultCommitTimeout
	}

	workers, conns, err := connect(ctx, cfg, perConn)
	defer func() {
		for _, c := range conns {
			c.CloseIdleConnections()
		}
	}()
	if err != nil {
		return nil, err
	}

	start := time.Now()
	p := &plan{
		clients: cfg.Clients,
		scope:   cfg.Scope,
		opt:     client.WriteOptions{WaitCommit: cfg.Wait == WaitCommit},
		msg:     payload(cfg.Size),
		warmEnd: start.Add(warmup),
		end:     start.Add(cfg.Duration),
	}
	runCtx, cancel := context.WithDeadline(ctx, p.end.Add(drainGrace))
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.run(runCtx, p) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: run interrupted: %w", err)
	}

	window := cfg.Duration - warmup
	res := &Result{
		Nodes: len(cfg.Nodes), Clients: cfg.Clients, Connections: len(conns), Protocol: protocol(cfg.HTTP2),
		Size: cfg.Size, Scope: string(cfg.Scope), Wait: string(cfg.Wait),
		DurationS: window.Seconds(), WarmupS: warmup.Seconds(),
		Errors: map[string]uint64{}, ErrorExamples: map[string]string{},
	}
	var h histogram
	views := map[ids.View]viewCount{}
	for _, w := range workers {
		h.merge(&w.hist)
		for code, n := range w.errs {
			res.Errors[code] += n
			if _, ok := res.ErrorExamples[code]; !ok {
				res.ErrorExamples[code] = w.examples[code]
			}
		}
		for _, vc := range w.views {
			m := views[vc.last.View]
			if vc.last.Compare(m.last) > 0 {
				m.last = vc.last
			}
			m.count += vc.count
			views[vc.last.View] = m
		}
	}
	res.Executed = h.n
	res.ExecutedTxPerS = float64(h.n) / window.Seconds()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.P50Ms, res.P90Ms, res.P99Ms = ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99))
	res.MaxMs, res.MeanMs = ms(h.max), ms(h.mean())

	if cfg.Wait == WaitCommit {
		res.Committed = res.Executed
	} else {
		res.Committed, res.LastTxID, res.CommitWaitMs, res.CommitWaitError = confirmCommits(ctx, conns[0], views, p.end, commitTimeout)
	}
	res.CommittedTxPerS = float64(res.Committed) / window.Seconds()
	return res, nil
}

// connect makes one client per group of perConn workers on the same node and
// checks each is ready, so TLS handshakes happen before the clock starts.
func connect(ctx context.Context, cfg Config, perConn int) ([]*worker, []*client.Client, error) {
	var conns []*client.Client
	workers := make([]*worker, cfg.Clients)
	for n, addr := range cfg.Nodes {
		var c *client.Client
		onNode := 0
		for i := n; i < cfg.Clients; i += len(cfg.Nodes) {
			if onNode%perConn == 0 {
				var err error
				c, err = client.New(client.Config{Address: addr, ServiceCertPEM: cfg.ServiceCertPEM, CertPEM: cfg.CertPEM, KeyPEM: cfg.KeyPEM, HTTP1: !cfg.HTTP2})
				if err != nil {
					return nil, conns, fmt.Errorf("bench: node %s: %w", addr, err)
				}
				conns = append(conns, c)
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = c.Ready(rctx)
				cancel()
				if err != nil {
					return nil, conns, fmt.Errorf("bench: node %s is not ready: %w", addr, err)
				}
			}
			onNode++
			workers[i] = &worker{index: i, c: c, errs: map[string]uint64{}, examples: map[string]string{}}
		}
	}
	return workers, conns, nil
}

// Error back-off bounds: a failing node must not turn the workers into a
// busy loop on the cores it shares with them.
const (
	backoffFirst = time.Millisecond
	backoffMax   = 100 * time.Millisecond
)

func (w *worker) run(ctx context.Context, p *plan) {
	var backoff time.Duration
	for k := uint64(0); ; k++ {
		t0 := time.Now()
		if !t0.Before(p.end) || ctx.Err() != nil {
			return
		}
		// Distinct ids across workers without shared state.
		id := k*uint64(p.clients) + uint64(w.index) + 1
		tx, err := w.c.LogWrite(ctx, p.scope, id, p.msg, p.opt)
		t1 := time.Now()
		if !t1.Before(p.end) {
			return // finished after the end: not part of the run
		}
		if err != nil {
			code := classify(err)
			if w.errs[code]++; w.errs[code] == 1 {
				w.examples[code] = err.Error()
			}
			backoff = min(max(2*backoff, backoffFirst), backoffMax, p.end.Sub(t1))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if t1.Before(p.warmEnd) {
			continue
		}
		w.hist.record(t1.Sub(t0))
		if !p.opt.WaitCommit {
			w.countTx(tx)
		}
	}
}

func (w *worker) countTx(tx client.TxID) {
	for i := range w.views {
		if w.views[i].last.View == tx.View {
			if tx.Compare(w.views[i].last) > 0 {
				w.views[i].last = tx
			}
			w.views[i].count++
			return
		}
	}
	w.views = append(w.views, viewCount{last: tx, count: 1})
}

// classify names an error for the Errors table.
func classify(err error) string {
	var ae *client.APIError
	var ne net.Error
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.As(err, &ae):
		return "HTTP" + strconv.Itoa(ae.Status)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "Timeout"
	case errors.Is(err, client.ErrBadResponse):
		return "BadResponse"
	}
	return "Transport"
}

// confirmCommits waits, bounded by timeout, for the last tx of each view to
// commit; a view whose last tx commits has all its counted txs committed. A
// view whose last tx does not (lost in an election, or the wait timed out)
// counts as not committed at all: an undercount, never an overcount.
func confirmCommits(ctx context.Context, c *client.Client, views map[ids.View]viewCount, end time.Time, timeout time.Duration) (committed uint64, last string, waitMs float64, waitErr string) {
	if len(views) == 0 {
		return 0, "", 0, ""
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []string
	var top client.TxID
	for _, v := range slices.Sorted(maps.Keys(views)) {
		vc := views[v]
		if vc.last.Compare(top) > 0 {
			top = vc.last
		}
		if err := c.WaitCommitted(wctx, vc.last); err != nil {
			errs = append(errs, fmt.Sprintf("%d txs up to %s: %v", vc.count, vc.last, err))
			continue
		}
		committed += vc.count
	}
	if errs != nil {
		return committed, top.String(), 0, strings.Join(errs, "; ")
	}
	return committed, top.String(), float64(time.Since(end).Microseconds()) / 1000, ""
}

func protocol(http2 bool) string {
	if http2 {
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// WriteText prints r for people.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients on %d node(s) over %d %s connection(s); %d-byte %s writes, wait=%s\n",
		r.Clients, r.Nodes, r.Connections, r.Protocol, r.Size, r.Scope, r.Wait)
	fmt.Fprintf(&b, "measured %.2fs after %.2fs warm-up\n", r.DurationS, r.WarmupS)
	fmt.Fprintf(&b, "executed   %10d tx  %10.1f tx/s\n", r.Executed, r.ExecutedTxPerS)
	fmt.Fprintf(&b, "committed  %10d tx  %10.1f tx/s", r.Committed, r.CommittedTxPerS)
	if r.Wait == string(WaitNone) && r.LastTxID != "" {
		fmt.Fprintf(&b, "  (last %s committed %.1f ms after the end)", r.LastTxID, r.CommitWaitMs)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "latency ms p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.MeanMs)
	if r.CommitWaitError != "" {
		fmt.Fprintf(&b, "not confirmed committed: %s\n", r.CommitWaitError)
	}
	if len(r.Errors) == 0 {
		b.WriteString("errors     none\n")
	}
	for _, code := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, "errors     %-24s %d  e.g. %s\n", code, r.Errors[code], r.ErrorExamples[code])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
