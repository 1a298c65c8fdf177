package ws

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBroker is the channel layer shared by many processes through Redis
// pub/sub. Each process subscribes only to the channels it has local
// members in. Publish delivers to local members at once, in the caller's
// goroutine, and PUBLISHes for the others; a process skips what it sent
// itself, so every member gets each message exactly once, and local chat
// goes on while Redis is away.
type RedisBroker struct {
	conn         *RedisConn
	ps           *redis.PubSub
	deliver      Deliver     // nil until Start: Publish then only reaches Redis
	resync       func()      // see Broker.Start; nil until Start
	syncing      atomic.Bool // a resync goroutine runs
	resyncWanted atomic.Bool // ...and should run (again)
	logger       *slog.Logger

	mu      sync.Mutex
	pending []subOp // Subscribe/Unsubscribe calls not yet sent, in order
	wake    chan struct{}

	up       atomic.Bool // last known Redis state
	failures int         // health checks failed in a row (healthLoop only)
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type subOp struct {
	channel string
	sub     bool
}

var _ Broker = (*RedisBroker)(nil)

// RedisConn is the one Redis connection a process's channel layer and
// presence share: a client, the prefix of every key and channel, and a
// random id for this process (its "node").
type RedisConn struct {
	client *redis.Client
	prefix string
	node   string
}

// DialRedis prepares a connection to url (redis://host:port/db) whose keys
// and channels start with prefix. It connects lazily: an unreachable
// server is not an error here, only a degraded state later.
func DialRedis(url, prefix string) (*RedisConn, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 2 * time.Second
	o.WriteTimeout = 2 * time.Second
	o.MaxRetries = 0 // a publish fails fast; the caller decides
	// Every sender's read loop publishes synchronously: a pool that is too
	// small makes them (and the health check) queue for a connection.
	o.PoolSize = 64
	id := make([]byte, 8)
	if _, err := cryptoRead(id); err != nil {
		return nil, err
	}
	return &RedisConn{client: redis.NewClient(o), prefix: prefix, node: hex.EncodeToString(id)}, nil
}

// Prefix returns the key and channel prefix.
func (r *RedisConn) Prefix() string { return r.prefix }

// Healthy pings Redis (for /readyz).
func (r *RedisConn) Healthy(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Close closes the connection; close the broker and presence first.
func (r *RedisConn) Close() error { return r.client.Close() }

// NewRedisBroker returns the channel layer on conn. NewHub starts it; a
// broker that is never started can still Publish (the CLI's revocation).
func NewRedisBroker(conn *RedisConn, logger *slog.Logger) *RedisBroker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &RedisBroker{
		conn:   conn,
		ps:     conn.client.Subscribe(ctx),
		logger: logger,
		wake:   make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	b.up.Store(true)
	return b
}

var cryptoRead = crand.Read

// Start runs the receive loop, the subscription worker and the health
// check until Close, handing what other processes publish to deliver.
func (b *RedisBroker) Start(deliver Deliver, resync func()) {
	b.deliver = deliver
	b.resync = resync
	b.wg.Add(3)
	go b.receiveLoop()
	go b.subscribeLoop()
	go b.healthLoop()
}

// Publish delivers msg to local members at once and sends it to the other
// processes. With Redis down it fails fast (the local members still got
// it) instead of stalling the sender.
func (b *RedisBroker) Publish(ctx context.Context, channel string, msg Message) error {
	if b.deliver != nil {
		b.deliver(channel, msg)
	}
	if !b.up.Load() {
		return errRedisDown
	}
	return b.conn.client.Publish(ctx, b.conn.prefix+channel, b.encode(msg)).Err()
}

var errRedisDown = errors.New("redis unreachable: delivered to this process only")

// Wire format: node "|" seq "|" payload.
func (b *RedisBroker) encode(msg Message) []byte {
	out := make([]byte, 0, len(b.conn.node)+24+len(msg.Payload))
	out = append(out, b.conn.node...)
	out = append(out, '|')
	out = strconv.AppendUint(out, msg.Seq, 10)
	out = append(out, '|')
	return append(out, msg.Payload...)
}

func decodeWire(s string) (node string, msg Message, ok bool) {
	b := []byte(s)
	i := bytes.IndexByte(b, '|')
	if i < 0 {
		return "", Message{}, false
	}
	j := bytes.IndexByte(b[i+1:], '|')
	if j < 0 {
		return "", Message{}, false
	}
	seq, err := strconv.ParseUint(string(b[i+1:i+1+j]), 10, 64)
	if err != nil {
		return "", Message{}, false
	}
	return string(b[:i]), Message{Payload: b[i+2+j:], Seq: seq}, true
}

// Subscribe records that this process wants channel; the worker sends it.
func (b *RedisBroker) Subscribe(channel string) { b.queue(subOp{channel, true}) }

// Unsubscribe records that this process no longer wants channel.
func (b *RedisBroker) Unsubscribe(channel string) { b.queue(subOp{channel, false}) }

func (b *RedisBroker) queue(op subOp) {
	b.mu.Lock()
	b.pending = append(b.pending, op)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// subscribeLoop applies Subscribe/Unsubscribe in call order. go-redis's
// PubSub remembers the channel set even when a command fails, and sends
// the whole set again whenever it reconnects, so nothing is retried here.
func (b *RedisBroker) subscribeLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.wake:
		}
		b.mu.Lock()
		ops := b.pending
		b.pending = nil
		b.mu.Unlock()
		subscribed := false
		for _, op := range ops {
			ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
			var err error
			if op.sub {
				err = b.ps.Subscribe(ctx, b.conn.prefix+op.channel)
				subscribed = subscribed || err == nil
			} else {
				err = b.ps.Unsubscribe(ctx, b.conn.prefix+op.channel)
			}
			cancel()
			if err != nil && b.ctx.Err() == nil {
				b.setUp(false, err)
			}
		}
		if subscribed {
			// What was published between a new member's join and this
			// subscription becoming active is read from history.
			b.startResync(100 * time.Millisecond)
		}
	}
}

// receiveLoop is the only goroutine that reads the PubSub (go-redis: not
// safe for concurrent use). On an error it backs off and tries again; the
// next read reconnects and resubscribes every channel.
func (b *RedisBroker) receiveLoop() {
	defer b.wg.Done()
	backoff := 100 * time.Millisecond
	reconnecting := false // an error since the last subscription confirmed
	for b.ctx.Err() == nil {
		m, err := b.ps.ReceiveTimeout(b.ctx, 5*time.Second)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet line: make sure it is alive (a dead one errors).
				if perr := b.ps.Ping(b.ctx); perr == nil {
					continue
				}
			}
			reconnecting = true
			b.setUp(false, err)
			sleep(b.ctx, backoff+time.Duration(rand.Int64N(int64(backoff)/2+1)))
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if sub, ok := m.(*redis.Subscription); ok && reconnecting && sub.Kind == "subscribe" {
			// go-redis has reconnected and resubscribed: what was published
			// while this process was not subscribed is read from history
			// now, not when a later message happens to show the gap (the
			// health loop's resync may run before the resubscription).
			reconnecting = false
			b.startResync(100 * time.Millisecond)
		}
		msg, ok := m.(*redis.Message)
		if !ok {
			continue // subscription confirmations and pongs
		}
		node, wire, ok := decodeWire(msg.Payload)
		if !ok || node == b.conn.node {
			continue // ours was delivered locally when published
		}
		b.deliver(msg.Channel[len(b.conn.prefix):], wire)
	}
}

// healthLoop pings Redis once a second so Publish can fail fast while it
// is down and /readyz can say so. It checks the server, not any value.
func (b *RedisBroker) healthLoop() {
	defer b.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		err := b.conn.client.Ping(ctx).Err()
		cancel()
		if b.ctx.Err() != nil {
			return
		}
		if err == nil {
			b.failures = 0
			b.setUp(true, nil)
			// Make the receive loop's next read reconnect promptly.
			_ = b.ps.Ping(b.ctx)
			continue
		}
		// One slow ping on a busy machine is not an outage: only three in a
		// row make Publish stop trying Redis.
		if b.failures++; b.failures >= 3 {
			b.setUp(false, err)
		}
	}
}

func (b *RedisBroker) setUp(up bool, err error) {
	if b.up.Swap(up) == up {
		return
	}
	if up {
		b.logger.Info("redis reachable again: cross-process delivery resumes; backfilling from history")
		b.startResync(time.Second) // once the receive loop has resubscribed
	} else {
		b.logger.Warn("redis unreachable: chat continues within this process", "err", err)
	}
}

// startResync runs resync after delay: one at a time, and once more if
// asked again while one runs.
func (b *RedisBroker) startResync(delay time.Duration) {
	if b.resync == nil {
		return
	}
	b.resyncWanted.Store(true)
	if !b.syncing.CompareAndSwap(false, true) {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			for b.resyncWanted.Swap(false) {
				sleep(b.ctx, delay)
				if b.ctx.Err() != nil {
					b.syncing.Store(false)
					return
				}
				b.resync()
			}
			b.syncing.Store(false)
			// A request that came after the loop's last check and before
			// syncing was cleared would otherwise be lost.
			if !b.resyncWanted.Load() || !b.syncing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// Up reports the last known Redis state.
func (b *RedisBroker) Up() bool { return b.up.Load() }

// Close stops the loops and the subscription connection (the shared
// RedisConn stays open for its owner to close).
func (b *RedisBroker) Close() error {
	b.cancel()
	err := b.ps.Close()
	b.wg.Wait()
	return err
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
