package ws

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HistoryMetrics are the history writer's histograms, served on /metrics
// (handlers.NewMetrics registers them). An observation is a few atomic
// adds, once per commit and once per message, so the writer calls them
// directly.
type HistoryMetrics struct {
	// Commit is the wall time of one group commit (Append: the
	// transaction that assigns the batch's offsets and stores it).
	Commit prometheus.Histogram
	// Wait is, per message, the time from being queued to the writer to
	// its commit returning: what history adds before fan-out starts
	// (queueing behind a commit in progress, gathering, its own commit).
	Wait prometheus.Histogram
	// Batch is the number of messages per commit.
	Batch prometheus.Histogram
}

// latencyBuckets run from 50 µs to about 1.6 s, doubling: fine enough to
// tell a commit that only wrote to the WAL (tens of µs) from one that
// waited for the disk or a lock (ms).
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 16)

func newHistoryMetrics() *HistoryMetrics {
	return &HistoryMetrics{
		Commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_history_commit_seconds",
			Help:    "Wall time of one history group commit (the transaction storing a batch of group messages).",
			Buckets: latencyBuckets,
		}),
		Wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_history_wait_seconds",
			Help:    "Per group message, from being queued to the history writer to its commit returning (before fan-out).",
			Buckets: latencyBuckets,
		}),
		Batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_history_batch_messages",
			Help:    "Group messages stored per history commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 … 512 (maxBatch)
		}),
	}
}

// Collectors returns the histograms for a registry.
func (m *HistoryMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Commit, m.Wait, m.Batch}
}

// observeCommit records one commit of n messages that took d.
func (m *HistoryMetrics) observeCommit(d time.Duration, n int) {
	m.Commit.Observe(d.Seconds())
	m.Batch.Observe(float64(n))
}
