package node

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the node's Prometheus metrics. Gauges read the node's atomics
// at scrape time, so the write path pays only for counters and histograms.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   prometheus.Histogram
	conflicts prometheus.Counter
	syncTime  prometheus.Histogram
	batch     prometheus.Histogram
	forwarded prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "coco_http_requests_total", Help: "HTTP requests by endpoint and status."}, []string{"endpoint", "status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "coco_http_request_seconds", Help: "HTTP request latency, including commit waits.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "coco_tx_conflicts_total", Help: "Transactions re-run after an optimistic concurrency conflict."}),
		syncTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "coco_ledger_sync_seconds", Help: "Ledger write+fsync time per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "coco_ledger_batch_entries", Help: "Entries made durable per fsync (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "coco_forwarded_writes_total", Help: "Writes this backup forwarded to the primary."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.requests, m.latency, m.conflicts, m.syncTime, m.batch, m.forwarded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("coco_last_seqno", "Seqno of the last executed transaction.", func() float64 { return float64(n.store.Seqno()) }),
		gauge("coco_durable_seqno", "Seqno up to which the ledger is fsynced.", func() float64 { return float64(n.durable.Load()) }),
		gauge("coco_committed_seqno", "Seqno up to which transactions are committed.", func() float64 { return float64(n.committed.Load()) }),
		gauge("coco_view", "Current view (raft term).", func() float64 { return float64(n.replica.Status().Term) }),
		gauge("coco_raft_applied_index", "Raft commit index applied to this node's state.", func() float64 { return float64(n.applied.Load()) }),
		gauge("coco_primary", "1 while this node is the primary.", func() float64 {
			if n.isPrimary() {
				return 1
			}
			return 0
		}),
	)
	return m
}

// metricPath bounds the endpoint label so hostile paths cannot grow the
// metric's cardinality.
func (n *Node) metricPath(path string) string {
	if _, ok := n.builtins[path]; ok {
		return path
	}
	if route, ok := n.apps.Route(path); ok {
		return route
	}
	return "other"
}

func (m *metrics) observeSync(d time.Duration, entries uint64) {
	m.syncTime.Observe(d.Seconds())
	m.batch.Observe(float64(entries))
}

func (n *Node) observeRequest(path string, status int, d time.Duration) {
	n.metrics.requests.WithLabelValues(n.metricPath(path), strconv.Itoa(status)).Inc()
	n.metrics.latency.Observe(d.Seconds())
}
