package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// quantiles are latencies in milliseconds.
type quantiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	N    uint64  `json:"n"`
}

func quantilesOf(h *histogram) quantiles {
	ms := func(d time.Duration) float64 { return round3(float64(d) / 1e6) }
	return quantiles{P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Quantile(1)), N: h.Count()}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
func round1(f float64) float64 { return math.Round(f*10) / 10 }

// serverResult is what /proc said about one server process.
type serverResult struct {
	PID             int   `json:"pid"`
	RSSBeforeKiB    int64 `json:"rss_before_kib"`
	RSSConnectedKiB int64 `json:"rss_connected_kib"`
	RSSSettledKiB   int64 `json:"rss_settled_kib"`
	RSSHoldKiB      int64 `json:"rss_hold_kib,omitempty"`
	RSSHoldMaxKiB   int64 `json:"rss_hold_max_kib,omitempty"`
	CPUConnectMs    int64 `json:"cpu_connect_ms"` // connect and settle (join storm)
	CPUSendMs       int64 `json:"cpu_send_ms,omitempty"`
}

// result is one run's figures; it is printed as a table and as the RESULT
// JSON line.
type result struct {
	Scenario string   `json:"scenario"`
	Via      string   `json:"via,omitempty"`
	URLs     []string `json:"urls"`
	Procs    int      `json:"procs"`
	Sources  int      `json:"sources"`
	Sockets  int      `json:"sockets"`
	Users    int      `json:"users,omitempty"` // -users: sockets share this many users
	Groups   int      `json:"groups"`
	Senders  int      `json:"senders"`
	Messages int64    `json:"messages"` // planned, all senders
	Rate     float64  `json:"rate,omitempty"`
	Window   int      `json:"window,omitempty"` // messages in flight per group (fast senders)

	Connected       int               `json:"connected"`
	ConnectFailures map[string]int    `json:"connect_failures,omitempty"`
	FailureSamples  map[string]string `json:"failure_samples,omitempty"`
	ConnectSeconds  float64           `json:"connect_s"`
	ConnectsPerSec  float64           `json:"connects_per_s"`
	HandshakeMs     quantiles         `json:"handshake_ms"`
	ReadyMs         quantiles         `json:"welcome_ms"`
	SettleFrames    int64             `json:"settle_frames"`
	Settled         bool              `json:"settled"`

	Sent             int64     `json:"sent,omitempty"`
	SendErrors       int64     `json:"send_errors,omitempty"`
	Expected         int64     `json:"expected,omitempty"`
	Deliveries       int64     `json:"deliveries,omitempty"`
	Lost             int64     `json:"lost"`
	Duplicates       int64     `json:"duplicates"`
	OutOfOrder       int64     `json:"out_of_order"`
	Foreign          int64     `json:"foreign"`
	Invalid          int64     `json:"invalid"`
	PresenceFrames   int64     `json:"presence_frames"`
	SendSeconds      float64   `json:"send_s,omitempty"`
	DeliveriesPerSec float64   `json:"deliveries_per_s,omitempty"`
	LatencyMs        quantiles `json:"latency_ms"`
	LatencyHist      *histJSON `json:"latency_hist,omitempty"` // every delivery's latency, for pooling runs (wsbench history)
	ScheduleLagMs    float64   `json:"schedule_lag_max_ms,omitempty"`
	StartLate        bool      `json:"start_late,omitempty"` // -start-unix-ms had passed when the run was ready to send
	TimedOut         bool      `json:"timed_out"`

	SendFailures     map[string]int    `json:"send_failures,omitempty"`
	SendSamples      map[string]string `json:"send_failure_samples,omitempty"`
	UnexpectedCloses map[string]int    `json:"unexpected_closes,omitempty"`
	CloseSamples     map[string]string `json:"close_samples,omitempty"`

	ToolCPUSendMs  int64   `json:"tool_cpu_send_ms,omitempty"`
	ToolCPUSendPct float64 `json:"tool_cpu_send_pct,omitempty"`
	ToolCPUTotalMs int64   `json:"tool_cpu_total_ms"`
	ToolRSSKiB     int64   `json:"tool_rss_kib"`
	ToolSaturated  bool    `json:"tool_saturated,omitempty"`

	Servers                  []serverResult `json:"servers,omitempty"`
	ServerKiBPerSocket       float64        `json:"server_kib_per_socket,omitempty"`
	ServerCPUMsPer1kConnects float64        `json:"server_cpu_ms_per_1k_connects,omitempty"`
	ServerCPUMsPer1kDeliv    float64        `json:"server_cpu_ms_per_1k_deliveries,omitempty"`
	ServerCPUSendPct         float64        `json:"server_cpu_send_pct,omitempty"`

	LoadStart   float64 `json:"loadavg_start"` // 1-minute load average
	LoadEnd     float64 `json:"loadavg_end"`
	WallSeconds float64 `json:"wall_s"`
	OK          bool    `json:"ok"`

	handshake, ready, latency *histogram
}

func (r *result) addConnected(evs []connectedEvent) {
	r.handshake, r.ready, r.latency = &histogram{}, &histogram{}, &histogram{}
	var start, end int64
	for i, ev := range evs {
		r.Connected += ev.Connected
		r.ConnectFailures, r.FailureSamples = mergeCounts(r.ConnectFailures, r.FailureSamples, ev.Failures, ev.Samples)
		if i == 0 || ev.Start < start {
			start = ev.Start
		}
		end = max(end, ev.End)
	}
	r.ConnectSeconds = round3(float64(end-start) / 1e9)
	if r.ConnectSeconds > 0 {
		r.ConnectsPerSec = round1(float64(r.Connected) / r.ConnectSeconds)
	}
}

// mergeCounts adds a worker's named counts to a result's, keeping the
// latest non-empty sample of each (truncated). The maps are made on first
// use, so a result without any stays without (and its JSON omits them).
func mergeCounts(counts map[string]int, samples map[string]string, add map[string]int, addSamples map[string]string) (map[string]int, map[string]string) {
	for k, v := range add {
		if counts == nil {
			counts, samples = map[string]int{}, map[string]string{}
		}
		counts[k] += v
		if s := addSamples[k]; s != "" {
			samples[k] = truncate(s, 160)
		}
	}
	return counts, samples
}

// addSettled adds the workers' settle reports: frames seen while the join
// storm lasted, and whether every worker saw it end.
func (r *result) addSettled(evs []settledEvent) {
	r.Settled = true
	for _, s := range evs {
		r.SettleFrames += s.Frames
		r.Settled = r.Settled && s.Settled
	}
}

func (r *result) initServers(pids serverSet, s0, s1, s2 []procSample) {
	for i, pid := range pids {
		if i >= len(s0) || i >= len(s1) || i >= len(s2) {
			return
		}
		r.Servers = append(r.Servers, serverResult{PID: pid, RSSBeforeKiB: s0[i].RSSKiB,
			RSSConnectedKiB: s1[i].RSSKiB, RSSSettledKiB: s2[i].RSSKiB,
			CPUConnectMs: (s2[i].CPU - s0[i].CPU).Milliseconds()})
	}
}

func (r *result) holdSample(s []procSample) {
	for i := range r.Servers {
		if i < len(s) {
			r.Servers[i].RSSHoldKiB = s[i].RSSKiB
			r.Servers[i].RSSHoldMaxKiB = max(r.Servers[i].RSSHoldMaxKiB, s[i].RSSKiB)
		}
	}
}

func (r *result) addComplete(t0 time.Time, evs []completeEvent, s2, s3 []procSample) {
	var end, cpu, lag int64
	for _, ev := range evs {
		end = max(end, ev.End)
		r.Sent += ev.Sent
		r.SendErrors += ev.SendErrors
		r.TimedOut = r.TimedOut || ev.TimedOut
		cpu += ev.CPUNs
		lag = max(lag, ev.LagMaxNs)
	}
	r.SendSeconds = round3(float64(end-t0.UnixNano()) / 1e9)
	r.ScheduleLagMs = round3(float64(lag) / 1e6)
	r.ToolCPUSendMs = cpu / 1e6
	if r.SendSeconds > 0 {
		r.ToolCPUSendPct = round1(float64(cpu) / 1e9 / r.SendSeconds * 100)
	}
	for i := range r.Servers {
		if i < len(s2) && i < len(s3) {
			r.Servers[i].CPUSendMs = (s3[i].CPU - s2[i].CPU).Milliseconds()
		}
	}
}

func (r *result) addDone(evs []doneEvent) {
	if r.latency == nil {
		r.handshake, r.ready, r.latency = &histogram{}, &histogram{}, &histogram{}
	}
	for _, ev := range evs {
		r.Expected += ev.Expected
		r.Deliveries += ev.Deliveries
		r.Lost += ev.Expected - ev.Distinct
		r.Duplicates += ev.Duplicates
		r.OutOfOrder += ev.OutOfOrder
		r.Foreign += ev.Foreign
		r.Invalid += ev.Invalid
		r.PresenceFrames += ev.Presence
		r.UnexpectedCloses, r.CloseSamples = mergeCounts(r.UnexpectedCloses, r.CloseSamples, ev.Unexpected, ev.Samples)
		r.SendFailures, r.SendSamples = mergeCounts(r.SendFailures, r.SendSamples, ev.SendFailures, ev.SendSamples)
		r.latency.merge(ev.Latency)
		r.handshake.merge(ev.Handshake)
		r.ready.merge(ev.Ready)
		r.ToolCPUTotalMs += ev.CPUNs / 1e6
		r.ToolRSSKiB += ev.RSSKiB
	}
}

// finish derives the per-unit figures once everything is in.
func (r *result) finish(wall time.Duration) {
	r.WallSeconds = round3(wall.Seconds())
	r.LoadEnd = loadAverage()
	if r.latency != nil {
		r.LatencyMs = quantilesOf(r.latency)
		if r.latency.Count() > 0 {
			h := r.latency.export()
			r.LatencyHist = &h
		}
		r.HandshakeMs = quantilesOf(r.handshake)
		r.ReadyMs = quantilesOf(r.ready)
	}
	if r.Connected > 0 && len(r.Servers) > 0 {
		var rss, cpu int64
		for _, s := range r.Servers {
			hold := s.RSSSettledKiB
			if s.RSSHoldKiB > 0 {
				hold = s.RSSHoldKiB
			}
			rss += hold - s.RSSBeforeKiB
			cpu += s.CPUConnectMs
		}
		r.ServerKiBPerSocket = round3(float64(rss) / float64(r.Connected))
		r.ServerCPUMsPer1kConnects = round3(float64(cpu) / float64(r.Connected) * 1000)
	}
	if r.Scenario != "idle" {
		if r.SendSeconds > 0 {
			r.DeliveriesPerSec = round1(float64(r.Deliveries) / r.SendSeconds)
		}
		var cpu int64
		for _, s := range r.Servers {
			cpu += s.CPUSendMs
		}
		if r.Deliveries > 0 && len(r.Servers) > 0 {
			r.ServerCPUMsPer1kDeliv = round3(float64(cpu) / float64(r.Deliveries) * 1000)
		}
		if r.SendSeconds > 0 && len(r.Servers) > 0 {
			r.ServerCPUSendPct = round1(float64(cpu) / 1e3 / r.SendSeconds * 100)
		}
		// One process on one core near 100% means the tool, not the
		// server, may be what limits the figures.
		r.ToolSaturated = r.Rate == 0 && r.ToolCPUSendPct >= 90*float64(r.Procs)
	}
	r.OK = r.Connected == r.Sockets && len(r.ConnectFailures) == 0 && len(r.UnexpectedCloses) == 0 &&
		r.Lost == 0 && r.Duplicates == 0 && r.OutOfOrder == 0 && r.Foreign == 0 && r.Invalid == 0 &&
		r.SendErrors == 0 && !r.TimedOut
}

func printResult(w io.Writer, r *result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	title := r.Scenario
	if r.Via != "" {
		title += " via " + r.Via
	}
	row("scenario", "%s", title)
	row("servers", "%s", strings.Join(r.URLs, " "))
	row("layout", "%d sockets, %d group(s), %d process(es), %d source address(es)", r.Sockets, r.Groups, r.Procs, r.Sources)
	row("connected", "%d in %.2f s (%.0f/s)", r.Connected, r.ConnectSeconds, r.ConnectsPerSec)
	row("handshake ms", "p50 %.2f  p99 %.2f  max %.2f", r.HandshakeMs.P50, r.HandshakeMs.P99, r.HandshakeMs.Max)
	row("welcome ms", "p50 %.2f  p99 %.2f  max %.2f", r.ReadyMs.P50, r.ReadyMs.P99, r.ReadyMs.Max)
	row("connect failures", "%s", countsString(r.ConnectFailures))
	row("join storm", "%d frames before settling (settled: %v)", r.SettleFrames, r.Settled)
	if r.Scenario != "idle" {
		pace := fmt.Sprintf("as fast as a window of %d per group allows", r.Window)
		if r.Rate > 0 {
			pace = fmt.Sprintf("paced at %g msg/s", r.Rate)
		}
		row("messages", "%d sent by %d senders (%s), %d send errors", r.Sent, r.Senders, pace, r.SendErrors)
		row("deliveries", "%d of %d expected in %.2f s = %.0f/s", r.Deliveries, r.Expected, r.SendSeconds, r.DeliveriesPerSec)
		row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f", r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.P999, r.LatencyMs.Max)
		row("lost / dup / out of order", "%d / %d / %d  (foreign %d, invalid %d)", r.Lost, r.Duplicates, r.OutOfOrder, r.Foreign, r.Invalid)
		if r.Rate > 0 {
			row("schedule lag max", "%.3f ms", r.ScheduleLagMs)
		}
		if r.StartLate {
			row("start", "late: -start-unix-ms had passed when the run was ready to send")
		}
		row("tool CPU (send phase)", "%d ms = %.1f%% of one core%s", r.ToolCPUSendMs, r.ToolCPUSendPct, map[bool]string{true: "  ← the tool may be the bottleneck"}[r.ToolSaturated])
	}
	if len(r.SendFailures) > 0 {
		row("send failures", "%s", countsString(r.SendFailures))
		for k, v := range r.SendSamples {
			row("", "%s: %s", k, v)
		}
	}
	row("presence frames", "%d", r.PresenceFrames)
	row("unexpected closes", "%s", countsString(r.UnexpectedCloses))
	row("tool", "CPU %d ms in all, RSS %d KiB", r.ToolCPUTotalMs, r.ToolRSSKiB)
	for _, s := range r.Servers {
		line := fmt.Sprintf("RSS %d → %d KiB connected, %d settled", s.RSSBeforeKiB, s.RSSConnectedKiB, s.RSSSettledKiB)
		if s.RSSHoldKiB > 0 {
			line += fmt.Sprintf(", %d holding (max %d)", s.RSSHoldKiB, s.RSSHoldMaxKiB)
		}
		line += fmt.Sprintf("; CPU %d ms connecting", s.CPUConnectMs)
		if r.Scenario != "idle" {
			line += fmt.Sprintf(", %d ms sending", s.CPUSendMs)
		}
		row(fmt.Sprintf("server %d", s.PID), "%s", line)
	}
	if len(r.Servers) > 0 {
		row("server per socket", "%.1f KiB RSS, %.1f ms CPU per 1,000 connects", r.ServerKiBPerSocket, r.ServerCPUMsPer1kConnects)
		if r.Scenario != "idle" {
			row("server per delivery", "%.3f ms CPU per 1,000 deliveries (%.1f%% of one core while sending)", r.ServerCPUMsPer1kDeliv, r.ServerCPUSendPct)
		}
	}
	row("load average", "%.2f at the start, %.2f at the end (1 min)", r.LoadStart, r.LoadEnd)
	row("gave up", "%v (deadline, or nothing arrived for 10 s)", r.TimedOut)
	row("ok", "%v (all connected, nothing lost, duplicated, reordered or closed)", r.OK)
	tw.Flush()
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "RESULT %s\n", b)
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
