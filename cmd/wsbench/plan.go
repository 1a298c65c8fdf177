package main

import (
	"sync"
	"time"
)

// A plan is one worker's share of a run: its members and publishers, and
// the whole group layout (to know what every member must receive).
type plan struct {
	Worker     int           `json:"worker"`
	Via        string        `json:"via"`
	HTTPURLs   []string      `json:"http_urls"`
	WSURLs     []string      `json:"ws_urls"`
	APIKey     string        `json:"api_key,omitempty"`
	Groups     []planGroup   `json:"groups"`
	Members    []planMember  `json:"members"`
	Publishers []planPub     `json:"publishers,omitempty"`
	Senders    int           `json:"senders"` // in all groups, for -rate's schedule
	Conc       int           `json:"conc"`
	Window     int           `json:"window"` // messages in flight per group and worker
	Rate       float64       `json:"rate"`
	Deadline   int64         `json:"deadline"` // unix ns: connecting, settling and sending end by then
	Settle     time.Duration `json:"settle"`
	Teardown   time.Duration `json:"teardown"`        // longest wait for the server to close
	Storm      *stormPlan    `json:"storm,omitempty"` // a storm worker (storm.go) instead
}

type planGroup struct {
	Name    string       `json:"name"`
	Members []int        `json:"-"`
	Senders []planSender `json:"senders"`
}

type planSender struct {
	Name   string `json:"name"`
	Msgs   int    `json:"msgs"`
	Order  int    `json:"order"`  // position in -rate's interleaving
	Member int    `json:"member"` // global member index; -1 for a publisher
	Ack    int    `json:"ack"`    // member whose receipt frees the sender's window
}

type planMember struct {
	Index  int    `json:"i"`
	Name   string `json:"name"`
	Token  string `json:"token"`
	Group  int    `json:"g"`
	URL    int    `json:"u"`
	Source string `json:"src,omitempty"`
	Sender int    `json:"s"` // index in the group's senders, -1 if none
}

type planPub struct {
	Group  int `json:"g"`
	Sender int `json:"s"`
	URL    int `json:"u"`
}

// Worker events (worker → coordinator), one line each: "<kind> <json>".
type (
	connectedEvent struct {
		Connected int               `json:"connected"`
		Failures  map[string]int    `json:"failures,omitempty"`
		Samples   map[string]string `json:"samples,omitempty"`
		Start     int64             `json:"start"`
		End       int64             `json:"end"`
	}
	settledEvent struct {
		Frames  int64 `json:"frames"`
		RSSKiB  int64 `json:"rss_kib"`
		Settled bool  `json:"settled"`
	}
	completeEvent struct {
		End        int64 `json:"end"`
		TimedOut   bool  `json:"timed_out"`
		Sent       int64 `json:"sent"`
		SendErrors int64 `json:"send_errors"`
		CPUNs      int64 `json:"cpu_ns"`
		LagMaxNs   int64 `json:"lag_max_ns"`
	}
	doneEvent struct {
		Members      int               `json:"members"`
		Connected    int               `json:"connected"`
		Expected     int64             `json:"expected"`
		Deliveries   int64             `json:"deliveries"`
		Distinct     int64             `json:"distinct"`
		Duplicates   int64             `json:"duplicates"`
		OutOfOrder   int64             `json:"out_of_order"`
		Foreign      int64             `json:"foreign"`
		Invalid      int64             `json:"invalid"`
		Presence     int64             `json:"presence"`
		Unexpected   map[string]int    `json:"unexpected_closes,omitempty"`
		Samples      map[string]string `json:"samples,omitempty"`
		SendFailures map[string]int    `json:"send_failures,omitempty"`
		SendSamples  map[string]string `json:"send_samples,omitempty"`
		Latency      histJSON          `json:"latency"`
		Handshake    histJSON          `json:"handshake"`
		Ready        histJSON          `json:"ready"`
		CPUNs        int64             `json:"cpu_ns"`
		RSSKiB       int64             `json:"rss_kib"`
	}
)

// counter is a map of named counts with one sample message each.
type counter struct {
	mu      sync.Mutex
	counts  map[string]int
	samples map[string]string
}

func (c *counter) add(key, sample string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts, c.samples = map[string]int{}, map[string]string{}
	}
	c.counts[key]++
	if _, ok := c.samples[key]; !ok && sample != "" {
		c.samples[key] = sample
	}
}

func (c *counter) snapshot() (map[string]int, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneMap(c.counts), cloneMap(c.samples)
}

// cloneMap copies m for a report; an empty m gives nil.
func cloneMap[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
