package handlers

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"switchboard/ws"
)

// Metrics is switchboard's Prometheus registry (its own, not the global
// one). Hub figures are read from the hub's atomics at scrape time, so the
// message path never calls into the metrics library.
type Metrics struct {
	reg          *prometheus.Registry
	authFailures *prometheus.CounterVec
	publishes    *prometheus.CounterVec
}

// NewMetrics registers every switchboard metric. redisUp reports the Redis
// layer's state; nil means the in-process layer (no Redis metric).
func NewMetrics(hub *ws.Hub, redisUp func() bool) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_auth_failures_total",
			Help: "Refused tokens and users (REST and WebSocket), by reason.",
		}, []string{"reason"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_publish_calls_total",
			Help: "Server-side publish calls: kind=group (POST /api/groups/{group}/messages) or status (PUT /api/status/{key}).",
		}, []string{"kind"}),
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.authFailures, m.publishes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_sockets_open", Help: "WebSockets open on this process.",
		}, func() float64 { n, _ := hub.Counts(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_groups", Help: "Groups and status keys with at least one member on this process.",
		}, func() float64 { _, n := hub.Counts(); return float64(n) }),
		counter("switchboard_messages_in_total", "Frames received from clients.", hub.Stats.MessagesIn.Load),
		counter("switchboard_messages_out_total", "Frames queued to members (one per member per message).", hub.Stats.MessagesOut.Load),
		counter("switchboard_frames_dropped_total", "Frames a member could not be given because it was closing or its queue was full.", hub.Stats.FramesDropped.Load),
		counter("switchboard_slow_consumers_total", "Members closed with 1013 because their queue was full.", hub.Stats.SlowConsumers.Load),
		counter("switchboard_protocol_errors_total", "switchboard.v1 frames answered with an error frame (malformed or unknown type).", hub.Stats.ProtocolErrors.Load),
		closesCollector{hub},
	)
	if hm := hub.HistoryMetrics(); hm != nil {
		m.reg.MustRegister(hm.Collectors()...)
	}
	if redisUp != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_redis_up", Help: "1 while the Redis channel layer is reachable, 0 while degraded to this process only.",
		}, func() float64 {
			if redisUp() {
				return 1
			}
			return 0
		}))
	}
	return m
}

// Register adds collectors built outside this package (the SQLite
// checkpointer's).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// AuthFailed counts a refused token or user; Auth's OnFailure.
func (m *Metrics) AuthFailed(reason string) { m.authFailures.WithLabelValues(reason).Inc() }

func (m *Metrics) published(kind string) {
	if m != nil {
		m.publishes.WithLabelValues(kind).Inc()
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var closesDesc = prometheus.NewDesc("switchboard_socket_closes_total",
	"WebSocket closes by code (sent by the server, or received from the peer; 1006 when the connection just dropped).",
	[]string{"code"}, nil)

type closesCollector struct{ hub *ws.Hub }

func (c closesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- closesDesc }

func (c closesCollector) Collect(ch chan<- prometheus.Metric) {
	for code, n := range c.hub.Stats.Closes() {
		ch <- prometheus.MustNewConstMetric(closesDesc, prometheus.CounterValue, float64(n), strconv.Itoa(code))
	}
}
