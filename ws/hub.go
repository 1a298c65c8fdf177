package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Hub tracks which clients are members of which channels in this process
// and fans messages out to them.
//
// Unlike gorilla's chat example, the hub has no goroutine of its own:
// membership sits behind a mutex and deliver runs in the goroutine the
// broker calls it from, so there is no single goroutine for every message
// to queue behind and no channel send that can hang at shutdown.
type Hub struct {
	// recent holds this process's revocations of the last recentFor, so a
	// socket whose user was looked up just before a revocation, and named
	// to the hub just after it, is still closed (see Identify). Under mu.
	recent map[int64]revocation
	// forget, when set (OnRevoke), hears each user CloseUser or
	// CloseRevoked is about to close, before the revocation is recorded.
	forget atomic.Pointer[func(userID int64)]

	broker  Broker
	history HistoryStore // nil: history off
	hcfg    HistoryConfig
	writer  *historyWriter
	logger  *slog.Logger

	mu       sync.RWMutex
	channels map[string]*channel
	clients  map[*Client]struct{}
	closed   bool

	wg sync.WaitGroup // one per client between Add and its Serve's end

	// presenceHook, when set (SetPresenceHook), receives the presence
	// frames carried on group channels instead of the members.
	presenceHook atomic.Pointer[func(channel string, payload []byte)]

	// Stats are running totals for metrics.
	Stats Stats
}

type channel struct {
	// name is the channel's key in Hub.channels; members record this
	// string, not the caller's copy, so they share one allocation.
	name    string
	mu      sync.RWMutex
	members []*Client
	index   map[*Client]int
	log     *groupLog // a group's ordered stream, when history is on
	// catching lets one catch-up of the group run at a time: the members
	// of a dead process reconnecting here at once share the first one's
	// reads instead of each reading the same rows.
	catching sync.Mutex
}

// groupLog is this process's place in one group's stream: members get the
// group's messages in offset order, each once. A message that arrives
// ahead of one this process has not seen (from another process, through
// Redis) is held and the missing ones are read from history.
type groupLog struct {
	group   string
	epoch   string
	offset  uint64             // the last offset delivered to local members
	held    map[uint64]Message // arrived early, by offset
	filling bool               // a gap fill is scheduled
	// stale: a resync could not read the group's history, so this process
	// may be behind it without knowing by how much; the next join or
	// catch-up reads it whatever since says.
	stale bool
}

// gapWait is how long an early message waits for the ones before it to
// arrive live before they are read from history.
const gapWait = 50 * time.Millisecond

// ErrHubClosed is returned by Join once shutdown has begun.
var ErrHubClosed = errors.New("hub closed")

// HubOption configures NewHub.
type HubOption func(*Hub)

// WithHistory turns group history on: group messages get offsets, are
// stored in store before delivery, and members can recover what they
// missed.
func WithHistory(store HistoryStore, cfg HistoryConfig, logger *slog.Logger) HubOption {
	return func(h *Hub) { h.history, h.hcfg, h.logger = store, cfg, logger }
}

// NewHub returns an empty hub on the channel layer b: it starts b with the
// hub's deliver and subscribes to ControlChannel, so the hub is ready to
// use (as centrifuge's node registers itself with its broker once).
func NewHub(b Broker, opts ...HubOption) *Hub {
	h := &Hub{broker: b, channels: map[string]*channel{}, clients: map[*Client]struct{}{}}
	for _, o := range opts {
		o(h)
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.history != nil {
		h.writer = newHistoryWriter(h.history, h.hcfg, h.logger, b.Publish)
	}
	b.Start(h.deliver, h.Resync)
	b.Subscribe(ControlChannel)
	return h
}

// HistoryOn reports whether group history is on.
func (h *Hub) HistoryOn() bool { return h.history != nil }

// HistoryMetrics returns the history writer's histograms; nil with
// history off.
func (h *Hub) HistoryMetrics() *HistoryMetrics {
	if h.writer == nil {
		return nil
	}
	return h.writer.metrics
}

// HistoryConfig returns the history settings.
func (h *Hub) HistoryConfig() HistoryConfig { return h.hcfg }

// Add registers c with the hub (for shutdown and revocation) and removes it
// from every channel when its read loop ends. Call it before c.Serve.
func (h *Hub) Add(c *Client) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	// Bound before c is visible in h.clients: Shutdown may Close it at once.
	c.bind(h)
	h.clients[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	return nil
}

// Join makes c a member of channel, subscribing this process to it when c
// is its first local member.
func (h *Hub) Join(name string, c *Client) error {
	_, _, _, err := h.join(name, c, nil, false)
	return err
}

// JoinGroup makes c a member of group and returns the group's position at
// that instant: every message after it reaches c, none before it does.
// With history on, the first local member reads the group's position from
// the database (never under the hub's lock), and the group is then
// brought up to date from history: a message stored and delivered between
// that read and the channel's creation reached no local member.
func (h *Hub) JoinGroup(ctx context.Context, group string, c *Client) (Position, error) {
	name := GroupChannel(group)
	if h.history == nil {
		return Position{}, h.Join(name, c)
	}
	for {
		h.mu.RLock()
		known := h.channels[name] != nil
		h.mu.RUnlock()
		var log *groupLog
		if !known {
			epoch, offset, err := h.history.Position(ctx, group)
			if err != nil {
				return Position{}, err
			}
			log = &groupLog{group: group, epoch: epoch, offset: offset}
		} else if err := h.catchUpStale(ctx, name); err != nil {
			return Position{}, fmt.Errorf("history catch-up of %q: %w", group, err)
		}
		pos, ch, created, err := h.join(name, c, log, true)
		if errors.Is(err, errChannelGone) {
			continue // it went away meanwhile: read the position again
		}
		if err != nil {
			return Position{}, err
		}
		if created {
			// On an error c may have missed a message: the caller closes
			// it (it is not welcomed yet) and it reconnects.
			if err := h.catchUp(ctx, name, ch, 0); err != nil {
				return Position{}, fmt.Errorf("history catch-up of %q: %w", group, err)
			}
		}
		return pos, nil
	}
}

// errChannelGone: a group channel JoinGroup saw vanished before the join.
var errChannelGone = errors.New("channel gone")

// CatchUp brings group up to date from history when this process has
// delivered less of it than a reconnecting member has seen (since): the
// member may come from a process that is ahead (its message still on its
// way through Redis, or never published because that process died after
// storing it). Without it the member's recovery would be refused as from
// the future. It costs a database read only when this process is behind
// since.
func (h *Hub) CatchUp(ctx context.Context, group string, since uint64) error {
	if h.history == nil {
		return nil
	}
	name := GroupChannel(group)
	h.mu.RLock()
	ch := h.channels[name]
	h.mu.RUnlock()
	if ch == nil || ch.log == nil {
		return nil // the next join reads the position from the database
	}
	ch.mu.RLock()
	behind := ch.log.offset < since || ch.log.stale
	ch.mu.RUnlock()
	if !behind {
		return nil
	}
	return h.catchUp(ctx, name, ch, since)
}

// catchUpStale catches channel name up before a join when a resync
// could not (its log is stale), so the joining member's position is
// after what this process missed, not before it.
func (h *Hub) catchUpStale(ctx context.Context, name string) error {
	h.mu.RLock()
	ch := h.channels[name]
	h.mu.RUnlock()
	if ch == nil || ch.log == nil {
		return nil
	}
	ch.mu.RLock()
	stale := ch.log.stale
	ch.mu.RUnlock()
	if !stale {
		return nil
	}
	return h.catchUp(ctx, name, ch, 0)
}

// catchUp delivers to ch's members, in order, what history holds of the
// group beyond what this process has delivered, and clears the log's
// stale mark. A run missing from history (trimmed) is held and then
// handled by fillGap like any gap. One runs per channel at a time; a
// caller with since (CatchUp) that waited for another finds nothing left
// to do once this process has delivered since.
func (h *Hub) catchUp(ctx context.Context, name string, ch *channel, since uint64) error {
	ch.catching.Lock()
	defer ch.catching.Unlock()
	ch.mu.RLock()
	group, from, stale := ch.log.group, ch.log.offset, ch.log.stale
	ch.mu.RUnlock()
	if since != 0 && from >= since && !stale {
		return nil // caught up by the call this one waited for
	}
	_, last, err := h.history.Position(ctx, group)
	if err != nil {
		return err
	}
	if last > from {
		entries, err := h.history.Range(ctx, group, from, last, int(last-from))
		if err != nil {
			return err
		}
		for _, e := range entries {
			h.deliver(name, Message{Payload: e.Payload, Seq: e.Offset})
		}
	}
	if stale {
		ch.mu.Lock()
		ch.log.stale = false
		ch.mu.Unlock()
	}
	return nil
}

// join adds c to channel name and returns the channel, and whether this
// call created it. For a group channel (group), a new channel gets log,
// which JoinGroup read before the lock; when log is nil (the channel
// existed when JoinGroup looked) and the channel is gone, join returns
// errChannelGone instead of reading the database under h.mu, which would
// stall every delivery and join of this process meanwhile.
func (h *Hub) join(name string, c *Client, log *groupLog, group bool) (Position, *channel, bool, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return Position{}, nil, false, ErrHubClosed
	}
	ch := h.channels[name]
	first := ch == nil
	if first {
		if group && log == nil {
			h.mu.Unlock()
			return Position{}, nil, false, errChannelGone
		}
		ch = &channel{name: name, index: map[*Client]int{}, log: log}
		h.channels[name] = ch
		// Subscribe under h.mu so a racing last-Leave's Unsubscribe of the
		// same channel cannot be applied after it; it never blocks.
		h.broker.Subscribe(name)
	}
	var pos Position
	ch.mu.Lock()
	if _, ok := ch.index[c]; !ok {
		ch.index[c] = len(ch.members)
		ch.members = append(ch.members, c)
	}
	if ch.log != nil {
		pos = Position{Epoch: ch.log.epoch, Offset: ch.log.offset}
	}
	ch.mu.Unlock()
	h.mu.Unlock()

	c.mu.Lock()
	c.channels = append(c.channels, ch.name)
	c.mu.Unlock()
	return pos, ch, first, nil
}

// Leave removes c from channel, unsubscribing when it was the last member.
func (h *Hub) Leave(name string, c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[name]
	if ch == nil {
		return
	}
	ch.mu.Lock()
	if i, ok := ch.index[c]; ok {
		last := len(ch.members) - 1
		ch.members[i] = ch.members[last]
		ch.index[ch.members[i]] = i
		ch.members[last] = nil
		ch.members = ch.members[:last]
		delete(ch.index, c)
	}
	empty := len(ch.members) == 0
	ch.mu.Unlock()
	if empty {
		delete(h.channels, name)
		h.broker.Unsubscribe(name)
	}
}

// done is the end of c's read loop (see Client.bind): c leaves its
// channels and the hub, and Shutdown stops waiting for it.
func (h *Hub) done(c *Client) {
	h.remove(c)
	h.wg.Done()
}

func (h *Hub) remove(c *Client) {
	c.mu.Lock()
	names := c.channels
	c.channels = nil
	c.mu.Unlock()
	for _, name := range names {
		h.Leave(name, c)
	}
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// deliver fans msg out to this process's members of channel: the frame is
// built once and shared. It is the Deliver the hub starts its broker with.
func (h *Hub) deliver(name string, msg Message) {
	if name == ControlChannel {
		h.handleControl(msg)
		return
	}
	if hook := h.presenceHook.Load(); hook != nil && msg.Seq == 0 && isPresenceFrame(msg.Payload) {
		(*hook)(name, msg.Payload)
		return
	}
	h.mu.RLock()
	ch := h.channels[name]
	h.mu.RUnlock()
	if ch == nil {
		return
	}
	if ch.log == nil {
		ch.mu.RLock()
		h.fanout(ch, msg)
		ch.mu.RUnlock()
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	log := ch.log
	switch {
	case msg.Seq == 0: // ephemeral (presence): no place in the stream
		h.fanout(ch, msg)
	case msg.Seq <= log.offset: // delivered already (a backfill overlap)
	case msg.Seq == log.offset+1:
		h.fanout(ch, msg)
		log.offset = msg.Seq
		h.drainHeld(ch)
	default:
		if log.held == nil {
			log.held = map[uint64]Message{}
		}
		log.held[msg.Seq] = msg
		if !log.filling {
			log.filling = true
			time.AfterFunc(gapWait, func() { h.fillGap(name, ch) })
		}
	}
}

// SetPresenceHook makes deliver hand every presence frame carried on a
// group channel (join, leave, presence: from this process or another) to
// hook instead of the members; hook decides, per process, what the local
// members get, through DeliverLocal. PresenceFeed sets it.
func (h *Hub) SetPresenceHook(hook func(channel string, payload []byte)) {
	h.presenceHook.Store(&hook)
}

// presenceFramePrefixes are how every presence frame begins: they are
// encoded by Encode from structs whose first field is Type, and no other
// frame on a group channel has these types.
var presenceFramePrefixes = [][]byte{
	[]byte(`{"type":"join",`), []byte(`{"type":"leave",`), []byte(`{"type":"presence",`),
}

func isPresenceFrame(p []byte) bool {
	for _, pre := range presenceFramePrefixes {
		if bytes.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// DeliverLocal queues payload for this process's members of channel only:
// nothing crosses to other processes. Ephemeral (no offset).
func (h *Hub) DeliverLocal(name string, payload []byte) {
	h.mu.RLock()
	ch := h.channels[name]
	h.mu.RUnlock()
	if ch == nil {
		return
	}
	msg := Message{Payload: payload}
	if ch.log == nil {
		ch.mu.RLock()
		h.fanout(ch, msg)
		ch.mu.RUnlock()
		return
	}
	ch.mu.Lock()
	h.fanout(ch, msg)
	ch.mu.Unlock()
}

// drainHeld delivers the held messages that now follow in order (ch.mu
// held).
func (h *Hub) drainHeld(ch *channel) {
	log := ch.log
	for {
		next, ok := log.held[log.offset+1]
		if !ok {
			return
		}
		delete(log.held, log.offset+1)
		h.fanout(ch, next)
		log.offset++
	}
}

// fanout queues msg for every member of ch (ch.mu held). Group channels
// order by offset themselves, so members see no Seq; status channels keep
// the members' own "drop a version you have passed" rule.
func (h *Hub) fanout(ch *channel, msg Message) {
	f := TextFrame(msg.Payload)
	seq := msg.Seq
	if ch.log != nil {
		seq = 0
	}
	n := 0
	for _, c := range ch.members {
		cf := f
		if c == msg.Origin && msg.OriginPayload != nil {
			cf = TextFrame(msg.OriginPayload)
		}
		if c.enqueue(cf, seq) {
			n++
		}
	}
	h.Stats.MessagesOut.Add(int64(n))
}

// fillGap reads from history the messages between what ch has delivered
// and the first one it holds, and delivers them, so nothing is dropped or
// reordered. Offsets are assigned in committed transactions that lock the
// group, so a held offset's predecessors are already stored.
func (h *Hub) fillGap(name string, ch *channel) {
	ch.mu.Lock()
	log := ch.log
	from, to := log.offset, uint64(0)
	for off := range log.held {
		if to == 0 || off-1 < to {
			to = off - 1
		}
	}
	if len(log.held) == 0 || to <= from {
		log.filling = false
		ch.mu.Unlock()
		return
	}
	if h.writer != nil && h.writer.publishingUpTo(log.group, to) {
		// This process's own writer stored some of the missing offsets
		// and is publishing them: wait for its copies, which carry their
		// senders' ids, rather than read bare ones from history.
		time.AfterFunc(gapWait, func() { h.fillGap(name, ch) })
		ch.mu.Unlock()
		return
	}
	ch.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, err := h.history.Range(ctx, log.group, from, to, int(to-from))
	if err != nil {
		h.logger.Warn("history gap fill", "group", log.group, "err", err)
	}
	for _, e := range entries {
		h.deliver(name, Message{Payload: e.Payload, Seq: e.Offset})
	}
	ch.mu.Lock()
	if log.offset < to {
		// Not in history (trimmed, or the database failed): the members
		// present cannot get these messages in order, so they are told
		// (closed, CloseInsufficientState) rather than skipped past them;
		// each reconnects with since and recovers all it missed or hears
		// recovered:false. The log moves on, so members joining from now
		// on start after the gap and the group is not held forever.
		h.logger.Warn("history gap could not be filled: closing the group's members here",
			"group", log.group, "from", log.offset+1, "to", to, "members", len(ch.members))
		h.closeMembers(ch, CloseInsufficientState)
		log.offset = to
		for off := range log.held {
			if off <= log.offset {
				delete(log.held, off) // read from history behind the gap
			}
		}
	}
	h.drainHeld(ch)
	log.filling = false
	if len(log.held) > 0 { // a further gap
		log.filling = true
		time.AfterFunc(gapWait, func() { h.fillGap(name, ch) })
	}
	ch.mu.Unlock()
}

// Resync brings every local group up to date from history: what this
// process missed while the channel layer was away (a Redis outage or a
// subscription not yet active) reaches its members in order. Brokers call
// it after they (re)subscribe. Each group gets its own deadline and up to
// resyncTries reads, backing off between them; a group still unread after
// that has its members here closed with CloseInsufficientState (they may
// have missed messages, and reconnecting with since tells them which) and
// is marked stale, so the next join or recovery reads it first.
func (h *Hub) Resync() {
	if h.history == nil {
		return
	}
	h.mu.RLock()
	groups := map[string]*channel{}
	for name, ch := range h.channels {
		if ch.log != nil {
			groups[name] = ch
		}
	}
	h.mu.RUnlock()
	var failed []string
	for name, ch := range groups {
		if err := h.resyncGroup(name, ch); err != nil {
			failed = append(failed, name)
		}
	}
	for wait, try := time.Second, 1; len(failed) > 0 && try < resyncTries; wait, try = wait*2, try+1 {
		time.Sleep(wait)
		h.mu.RLock()
		closed := h.closed
		h.mu.RUnlock()
		if closed {
			return // shutting down: the members are being closed with 1001
		}
		again := failed[:0]
		for _, name := range failed {
			if err := h.resyncGroup(name, groups[name]); err != nil {
				again = append(again, name)
			}
		}
		failed = again
	}
	for _, name := range failed {
		ch := groups[name]
		h.logger.Warn("history resync failed: closing the group's members here", "group", ch.log.group, "tries", resyncTries)
		ch.mu.Lock()
		ch.log.stale = true
		h.closeMembers(ch, CloseInsufficientState)
		ch.mu.Unlock()
	}
}

// resyncTries bounds Resync's reads of one group (1 s, 2 s between).
const resyncTries = 3

// resyncGroup is one catch-up of one group for Resync, with its own
// deadline, so a slow database or many groups cannot run one shared
// deadline out and fail the groups after it.
func (h *Hub) resyncGroup(name string, ch *channel) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.catchUp(ctx, name, ch, 0)
	if err != nil {
		h.logger.Warn("history resync", "group", ch.log.group, "err", err)
	}
	return err
}

// closeMembers closes every member of ch with r (ch.mu held; Close never
// blocks).
func (h *Hub) closeMembers(ch *channel, r CloseReason) {
	for _, c := range ch.members {
		c.Close(r)
	}
}

// PublishGroup stores m in the group's history (history on) and delivers
// it to every member in every process, in offset order. With wait it
// returns once m is stored and published (a REST publish answers 202
// only then), or the error that kept it from being stored; otherwise it
// returns once m is queued, and a failure to store closes m.Origin with
// 1011 (the sender is told).
func (h *Hub) PublishGroup(ctx context.Context, m GroupMessage, wait bool) error {
	if h.writer == nil {
		msg := Message{Payload: m.Encode(0), Origin: m.Origin}
		if m.Origin != nil && m.EncodeOrigin != nil {
			msg.OriginPayload = m.EncodeOrigin(0)
		}
		// A failed publish (Redis down) still reached local members;
		// without history nothing can bring it to the others later.
		if err := h.broker.Publish(ctx, GroupChannel(m.Group), msg); err != nil {
			h.logger.Warn("group message reached this process only", "group", m.Group, "err", err)
		}
		return nil
	}
	return h.writer.append(ctx, m, wait)
}

// Publish sends msg to channel's members in every process.
func (h *Hub) Publish(ctx context.Context, name string, msg Message) error {
	return h.broker.Publish(ctx, name, msg)
}

// revocation is what recent remembers of one user.
type revocation struct {
	closedAt time.Time   // CloseUser (deactivated or deleted)...
	reason   CloseReason // ...with this reason
	version  int64       // CloseRevoked: tokens below it are revoked
	at       time.Time   // the latest of either
}

// recentFor is how long a revocation is remembered: far longer than a
// handshake's user lookup takes.
const recentFor = 30 * time.Second

// remember records a revocation of userID (h.mu held) and forgets old ones.
func (h *Hub) remember(userID int64, f func(*revocation)) {
	now := time.Now()
	if h.recent == nil {
		h.recent = map[int64]revocation{}
	}
	for id, r := range h.recent {
		if now.Sub(r.at) > recentFor {
			delete(h.recent, id)
		}
	}
	r := h.recent[userID]
	f(&r)
	r.at = now
	h.recent[userID] = r
}

// Identify names c's user and token version (after a successful token
// check that began at lookedUp) and reports whether the socket may stay:
// false, with the close to send, when a revocation of that user reached
// this process after the check's user lookup began. Without it a
// revocation landing between the lookup and the naming would find no
// socket to close and be lost.
func (h *Hub) Identify(c *Client, userID int64, username string, version int64, lookedUp time.Time) (CloseReason, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.UserID, c.Username = userID, username
	c.version.Store(version)
	r, ok := h.recent[userID]
	switch {
	case !ok:
	case r.reason.Code != 0 && !r.closedAt.Before(lookedUp):
		return r.reason, false
	case version < r.version:
		return CloseTokenRevoked, false
	}
	return CloseReason{}, true
}

// OnRevoke sets f to hear every user whose sockets are closed for a
// deactivation or revocation (CloseUser, CloseRevoked), whichever process
// made the change: the server drops its cached copy of the user there
// (models.UserStore.Forget), before the revocation is recorded, so a
// handshake that Identify lets through looked the user up afresh.
func (h *Hub) OnRevoke(f func(userID int64)) {
	h.forget.Store(&f)
}

func (h *Hub) revoked(userID int64) {
	if f := h.forget.Load(); f != nil {
		(*f)(userID)
	}
}

// CloseUser closes every local socket of userID with r and reports how
// many there were.
func (h *Hub) CloseUser(userID int64, r CloseReason) int {
	h.revoked(userID)
	h.mu.Lock()
	h.remember(userID, func(rv *revocation) { rv.closedAt, rv.reason = time.Now(), r })
	var victims []*Client
	for c := range h.clients {
		if c.UserID == userID {
			victims = append(victims, c)
		}
	}
	h.mu.Unlock()
	for _, c := range victims {
		c.Close(r)
	}
	return len(victims)
}

// RunPinger pings every client every interval until ctx is done, so dead
// peers are found by their pong deadline (ClientConfig.PongTimeout).
func (h *Hub) RunPinger(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var all []*Client
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.RLock()
		all = all[:0]
		for c := range h.clients {
			all = append(all, c)
		}
		h.mu.RUnlock()
		for _, c := range all {
			c.Ping()
		}
		clear(all)
	}
}

// RunExpiry closes, once a second until ctx is done, every client whose
// token expired more than its TokenGrace ago (4001 "token expired"): one
// process-wide sweep instead of a timer per socket.
func (h *Hub) RunExpiry(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var expired []*Client
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.mu.RLock()
			for c := range h.clients {
				if c.expiredAt(now) {
					expired = append(expired, c)
				}
			}
			h.mu.RUnlock()
			for _, c := range expired {
				c.Close(CloseTokenExpired)
			}
			clear(expired)
			expired = expired[:0]
		}
	}
}

// CloseRevoked closes, with 4004 "token revoked", every local socket of
// userID whose token version is below version.
func (h *Hub) CloseRevoked(userID, version int64) int {
	h.revoked(userID)
	h.mu.Lock()
	h.remember(userID, func(rv *revocation) { rv.version = max(rv.version, version) })
	var victims []*Client
	for c := range h.clients {
		if c.UserID == userID && c.tokenVersion() < version {
			victims = append(victims, c)
		}
	}
	h.mu.Unlock()
	for _, c := range victims {
		c.Close(CloseTokenRevoked)
	}
	return len(victims)
}

// Counts returns the number of local clients and channels (for metrics).
func (h *Hub) Counts() (clients, channels int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients), len(h.channels)
}

// Shutdown refuses new clients, closes every client with 1001 and waits
// until their read loops have ended or ctx is done.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	all := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		all = append(all, c)
	}
	h.mu.Unlock()
	for _, c := range all {
		c.Close(CloseShutdown)
	}
	defer func() {
		if h.writer != nil {
			h.writer.close() // stores and publishes what was queued
		}
	}()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range all {
			c.kill()
		}
		return ctx.Err()
	}
}
