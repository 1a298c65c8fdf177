package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two, so a percentile is within 1.6% of
// the true value. Record is safe from any goroutine (atomics only) and
// histograms of several workers merge by adding counts.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

const (
	histSub     = 64
	histMaxLen  = 42 // values up to 2^42 ns (73 min) keep their bucket
	histBuckets = 2*histSub + (histMaxLen-7)*histSub
)

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 2*histSub {
		return int(v)
	}
	n := bits.Len64(uint64(v))
	if n > histMaxLen {
		return histBuckets - 1
	}
	shift := n - 7 // v>>shift is in [64, 128)
	return 2*histSub + (shift-1)*histSub + int(v>>shift) - histSub
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	sub := int64((i-2*histSub)%histSub + histSub)
	return sub<<shift + int64(1)<<(shift-1)
}

func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// histJSON is a histogram on the wire: [bucket, count] pairs and the max.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets,omitempty"`
	Max     int64       `json:"max_ns"`
}

func (h *histogram) export() histJSON {
	var out histJSON
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	out.Max = h.max.Load()
	return out
}

// merge adds an exported histogram into h.
func (h *histogram) merge(in histJSON) {
	for _, b := range in.Buckets {
		if b[0] < histBuckets {
			h.counts[b[0]].Add(b[1])
		}
	}
	for {
		m := h.max.Load()
		if in.Max <= m || h.max.CompareAndSwap(m, in.Max) {
			return
		}
	}
}

func (h *histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the value below which a fraction q of the samples lie
// (0 when empty). q = 1 returns the exact maximum.
func (h *histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max.Load())
	}
	rank := uint64(q*float64(total) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := histValue(i)
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load())
}

// shardedHist spreads recording over several histograms so that readers on
// different cores do not fight over one cache line.
type shardedHist []*histogram

func newShardedHist(n int) shardedHist {
	s := make(shardedHist, n)
	for i := range s {
		s[i] = &histogram{}
	}
	return s
}

func (s shardedHist) merged() *histogram {
	h := &histogram{}
	for _, x := range s {
		h.merge(x.export())
	}
	return h
}
