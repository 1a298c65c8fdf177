package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// PresenceConfig is when a group's presence switches between join/leave
// frames and a count (PRESENCE_EVENTS_MAX, PRESENCE_COUNT_INTERVAL).
type PresenceConfig struct {
	// EventsMax is the most users online for which members get join and
	// leave frames; above it they get a count. Back to frames at 90% of
	// it or below.
	EventsMax int
	// CountInterval is the least time between two count frames.
	CountInterval time.Duration
}

// DefaultPresenceConfig returns the defaults the issue fixes.
func DefaultPresenceConfig() PresenceConfig {
	return PresenceConfig{EventsMax: 500, CountInterval: time.Second}
}

// PresenceFeed decides which presence frames this process's members of
// each group get.
//
// Up to EventsMax users online a group is in events mode: a user's first
// socket (last socket) publishes a join (leave) frame through the channel
// layer, as before. A join that takes the group's count (Presence.Count,
// across processes) past EventsMax publishes instead
// {"type":"presence","mode":"count","count":n}; from then on nobody
// publishes join or leave frames for the group. Every process with
// members there runs one timer for the group that, once per
// CountInterval, reads the count and, if it changed, delivers the count
// frame to its own members only (Hub.DeliverLocal). When a tick reads 90%
// of EventsMax or less, it publishes {"type":"presence","mode":"events",
// "users":[…]} and join/leave frames resume.
//
// Why this design: filling a group of n users then costs O(n) frames. In
// count mode a join costs no frame at all, and each member gets at most
// one frame per interval however many users join, because the frame
// comes from a timer, not from the joins. The count is read rather than
// carried by messages, so it is the group's count on every process (a
// process that dies stops counting after PRESENCE_TTL) with no message
// per join crossing Redis and no per-process copy of the frame on the
// channel layer: the Redis traffic of a group in count mode is one HLEN
// per process per interval. Only the two switches cross processes, as
// frames on the group's channel.
//
// Every presence frame carried on a group channel, local or from another
// process, reaches the feed first (Hub.SetPresenceHook): a process
// applies a switch once, whichever process announced it (two processes
// may announce the same switch at once; the second is dropped), and drops
// join/leave frames while its group is in count mode. The margin between
// EventsMax and 90% of it is the hysteresis that keeps a count hovering
// at the threshold from flapping between modes.
type PresenceFeed struct {
	hub      *Hub
	presence Presence
	cfg      PresenceConfig
	resume   int // back to events mode at this count or below
	logger   *slog.Logger

	mu     sync.Mutex
	groups map[string]*presenceGroup // groups with local members
}

// presenceGroup is one group's presence state in this process.
type presenceGroup struct {
	name    string // the group (not its channel)
	mu      sync.Mutex
	sockets int  // local chat sockets attached
	count   bool // count mode
	sent    int  // the count last delivered (count mode)
	timer   *time.Timer
	ticking bool // a tick is running: do not arm another
}

// modeStore is what a presence shared by processes adds: each group's
// mode, for a process that gets its first member of a group whose count
// is inside the hysteresis band. RedisPresence implements it.
type modeStore interface {
	countMode(ctx context.Context, group string) (bool, error)
	setCountMode(ctx context.Context, group string, on bool) error
}

// NewPresenceFeed returns the feed for hub and sets itself as the hub's
// presence hook. Zero fields of cfg take DefaultPresenceConfig's values.
func NewPresenceFeed(hub *Hub, presence Presence, cfg PresenceConfig, logger *slog.Logger) *PresenceFeed {
	def := DefaultPresenceConfig()
	if cfg.EventsMax <= 0 {
		cfg.EventsMax = def.EventsMax
	}
	if cfg.CountInterval <= 0 {
		cfg.CountInterval = def.CountInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &PresenceFeed{
		hub: hub, presence: presence, cfg: cfg, logger: logger,
		resume: cfg.EventsMax * 9 / 10,
		groups: map[string]*presenceGroup{},
	}
	hub.SetPresenceHook(f.receive)
	return f
}

// Attach records a local socket that joined group (after Hub.JoinGroup)
// and returns the group's mode and, in count mode, the count members
// were last sent: what the welcome says. The first local socket of a
// group reads its mode from the count (and, inside the band, from the
// shared mode).
func (f *PresenceFeed) Attach(ctx context.Context, group string) (mode string, count int) {
	f.mu.Lock()
	g := f.groups[group]
	if g != nil {
		f.mu.Unlock()
		g.mu.Lock()
		defer g.mu.Unlock()
		g.sockets++
		return g.mode()
	}
	g = &presenceGroup{name: group, sockets: 1}
	g.mu.Lock() // others wait until the mode is known
	f.groups[group] = g
	f.mu.Unlock()
	defer g.mu.Unlock()
	n, err := f.presence.Count(ctx, group)
	if err != nil {
		f.logger.Warn("presence count", "group", group, "err", err)
	}
	switch {
	case n > f.cfg.EventsMax:
		g.count = true
	case n > f.resume:
		if ms, ok := f.presence.(modeStore); ok {
			g.count, _ = ms.countMode(ctx, group)
		}
	}
	if g.count {
		g.sent = n
		f.armLocked(g)
	}
	return g.mode()
}

func (g *presenceGroup) mode() (string, int) {
	if g.count {
		return PresenceModeCount, g.sent
	}
	return PresenceModeEvents, 0
}

// Detach records that a local socket attached to group has gone (after
// its Announce of the leave); the last one stops the group's timer.
func (f *PresenceFeed) Detach(group string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[group]
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sockets--
	if g.sockets > 0 {
		return
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	delete(f.groups, group)
}

// Announce tells the group that user joined (typ PresenceJoin) or left
// (PresenceLeave), after Presence reported it was the user's first or
// last socket there: a join/leave frame in events mode, nothing in count
// mode (the timer reports the count), or the switch to count mode when
// the count has passed EventsMax.
func (f *PresenceFeed) Announce(ctx context.Context, group, user, typ string) {
	f.mu.Lock()
	g := f.groups[group]
	f.mu.Unlock()
	if g != nil {
		g.mu.Lock()
		count := g.count
		g.mu.Unlock()
		if count {
			return
		}
	}
	channel := GroupChannel(group)
	if typ == PresenceJoin {
		n, err := f.presence.Count(ctx, group)
		if err != nil {
			f.logger.Warn("presence count", "group", group, "err", err)
		} else if n > f.cfg.EventsMax {
			f.publishSwitch(ctx, group, true, Encode(PresenceCount{Type: PresenceType, Mode: PresenceModeCount, Count: n}))
			return
		}
	}
	if err := f.hub.Publish(ctx, channel, Message{Payload: Encode(PresenceEvent{Type: typ, User: user})}); err != nil {
		f.logger.Warn("publish presence", "group", group, "err", err)
	}
}

// publishSwitch records the group's new mode for processes that join it
// later and announces the switch to every process (this one included).
func (f *PresenceFeed) publishSwitch(ctx context.Context, group string, count bool, frame []byte) {
	if ms, ok := f.presence.(modeStore); ok {
		if err := ms.setCountMode(ctx, group, count); err != nil {
			f.logger.Warn("presence mode", "group", group, "err", err)
		}
	}
	if err := f.hub.Publish(ctx, GroupChannel(group), Message{Payload: frame}); err != nil {
		f.logger.Warn("publish presence mode", "group", group, "err", err)
	}
}

// receive is the hub's presence hook: it gets every presence frame on a
// group channel and decides what this process's members get.
func (f *PresenceFeed) receive(channel string, payload []byte) {
	group, ok := strings.CutPrefix(channel, groupPrefix)
	if !ok {
		f.hub.DeliverLocal(channel, payload)
		return
	}
	f.mu.Lock()
	g := f.groups[group]
	f.mu.Unlock()
	if g == nil {
		// No chat socket here (members joined by other means): as before.
		f.hub.DeliverLocal(channel, payload)
		return
	}
	var frame struct {
		Type  string `json:"type"`
		Mode  string `json:"mode"`
		Count int    `json:"count"`
	}
	// Only the rare switch frames are decoded; join and leave are told
	// apart by their prefix (isPresenceFrame).
	if bytes.HasPrefix(payload, presenceFramePrefixes[2]) && json.Unmarshal(payload, &frame) != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case frame.Type != PresenceType: // join or leave
		if g.count {
			return
		}
	case frame.Mode == PresenceModeCount:
		if g.count {
			return // switched already (another process announced it too)
		}
		g.count, g.sent = true, frame.Count
		f.armLocked(g)
	case frame.Mode == PresenceModeEvents:
		if !g.count {
			return
		}
		g.count = false
		if g.timer != nil {
			g.timer.Stop()
		}
	}
	// Under g.mu, so a welcome's mode (Attach) and the frames the socket
	// gets afterwards agree.
	f.hub.DeliverLocal(channel, payload)
}

// armLocked schedules the group's next count tick one interval from now
// (g.mu held): the switch frame and every count frame are at least an
// interval apart.
func (f *PresenceFeed) armLocked(g *presenceGroup) {
	if g.ticking {
		return // the running tick re-arms
	}
	if g.timer == nil {
		g.timer = time.AfterFunc(f.cfg.CountInterval, func() { f.tick(g) })
		return
	}
	g.timer.Reset(f.cfg.CountInterval)
}

// tick reads the group's count once: a change goes to the local members;
// 90% of EventsMax or less switches every process back to events mode.
func (f *PresenceFeed) tick(g *presenceGroup) {
	g.mu.Lock()
	if !g.count || g.sockets == 0 {
		g.mu.Unlock()
		return
	}
	g.ticking = true
	g.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := f.presence.Count(ctx, g.name)
	var users []string
	if err == nil && n <= f.resume {
		users, err = f.presence.List(ctx, g.name)
		if users == nil {
			users = []string{}
		}
	}

	g.mu.Lock()
	g.ticking = false
	switch {
	case err != nil:
		f.logger.Warn("presence count", "group", g.name, "err", err)
	case !g.count || g.sockets == 0:
		// Switched back meanwhile, or nobody left here.
	case n <= f.resume:
		g.mu.Unlock()
		f.publishSwitch(ctx, g.name, false, Encode(PresenceList{Type: PresenceType, Mode: PresenceModeEvents, Users: users}))
		g.mu.Lock() // the switch came back through receive: normally no longer count mode
	case n != g.sent:
		g.sent = n
		f.hub.DeliverLocal(GroupChannel(g.name), Encode(PresenceCount{Type: PresenceType, Mode: PresenceModeCount, Count: n}))
	}
	if g.count && g.sockets > 0 {
		f.armLocked(g)
	}
	g.mu.Unlock()
}
