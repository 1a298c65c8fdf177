package ws

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresence is Presence shared by every process on one Redis.
//
// Each group is a hash presence:<group> whose fields are usernames and
// whose values map process ids to an expiry time. A process counts its own
// sockets in memory and touches Redis only for a user's first or last
// local socket, and refreshes its entries every TTL/3, so a process that
// dies without cleaning up stops counting after at most TTL. Scripts make
// "first anywhere" and "last anywhere" atomic.
type RedisPresence struct {
	local  *MemoryPresence
	client *redis.Client
	prefix string
	// modePrefix keys each group's presence mode (see countMode).
	modePrefix string
	node       string
	ttl        time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Presence = (*RedisPresence)(nil)

// NewRedisPresence returns presence on conn, refreshing every ttl/3.
func NewRedisPresence(conn *RedisConn, ttl time.Duration) *RedisPresence {
	ctx, cancel := context.WithCancel(context.Background())
	p := &RedisPresence{local: NewMemoryPresence(), client: conn.client, prefix: conn.prefix + "presence:", modePrefix: conn.prefix + "presence-mode:", node: conn.node, ttl: ttl, cancel: cancel}
	p.wg.Add(1)
	go p.refreshLoop(ctx)
	return p
}

// joinScript adds this node's entry for a user and returns 1 when no other
// live node had the user. KEYS[1] hash; ARGV user, node, now, expiry, key ttl.
var joinScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
local m = {}
if v then m = cjson.decode(v) end
local others = false
for n, e in pairs(m) do
  if tonumber(e) <= tonumber(ARGV[3]) then m[n] = nil
  elseif n ~= ARGV[2] then others = true end
end
m[ARGV[2]] = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
redis.call('EXPIRE', KEYS[1], ARGV[5])
if others then return 0 end
return 1`)

// leaveScript removes this node's entry and returns 1 when no other live
// node has the user.
var leaveScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 1 end
local m = cjson.decode(v)
m[ARGV[2]] = nil
local others = false
for n, e in pairs(m) do
  if tonumber(e) <= tonumber(ARGV[3]) then m[n] = nil else others = true end
end
if others then
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`)

func (p *RedisPresence) args(user string) []any {
	now := time.Now()
	return []any{user, p.node, now.Unix(), now.Add(p.ttl).Unix(), int((2 * p.ttl).Seconds())}
}

func (p *RedisPresence) Join(ctx context.Context, group, user string) (bool, error) {
	first, _ := p.local.Join(ctx, group, user)
	if !first {
		return false, nil
	}
	n, err := joinScript.Run(ctx, p.client, []string{p.prefix + group}, p.args(user)...).Int()
	if err != nil {
		return true, err // Redis down: this process only knows it is first here
	}
	return n == 1, nil
}

func (p *RedisPresence) Leave(ctx context.Context, group, user string) (bool, error) {
	last, _ := p.local.Leave(ctx, group, user)
	if !last {
		return false, nil
	}
	n, err := leaveScript.Run(ctx, p.client, []string{p.prefix + group}, p.args(user)...).Int()
	if err != nil {
		return true, err
	}
	return n == 1, nil
}

// List returns users with a live entry from any process.
func (p *RedisPresence) List(ctx context.Context, group string) ([]string, error) {
	all, err := p.client.HGetAll(ctx, p.prefix+group).Result()
	if err != nil {
		// Redis down: say who is here rather than fail.
		local, _ := p.local.List(ctx, group)
		return local, err
	}
	now := time.Now().Unix()
	out := make([]string, 0, len(all))
	for user, v := range all {
		var m map[string]int64
		if json.Unmarshal([]byte(v), &m) != nil {
			continue
		}
		for _, exp := range m {
			if exp > now {
				out = append(out, user)
				break
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Count is the hash's length: O(1), so the presence feed may ask on every
// join. Users whose every entry has expired (a process that died) stay in
// the hash until a refresh sweeps them (sweepScript, every TTL/3), so the
// count of a group a process died in is too high for at most about
// TTL + TTL/3, as List is without its read-time filter.
func (p *RedisPresence) Count(ctx context.Context, group string) (int, error) {
	n, err := p.client.HLen(ctx, p.prefix+group).Result()
	if err != nil {
		local, _ := p.local.Count(ctx, group)
		return local, err
	}
	return int(n), nil
}

// sweepScript removes the users of KEYS[1] whose every entry expired
// before ARGV[1]. O(users), run once per group per refresh.
var sweepScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local live = false
  for _, e in pairs(cjson.decode(all[i+1])) do
    if tonumber(e) > tonumber(ARGV[1]) then live = true break end
  end
  if not live then redis.call('HDEL', KEYS[1], all[i]) end
end
return 0`)

// countMode and setCountMode keep which presence mode a group is in
// (PresenceFeed) under presence-mode:<group> (not under presence:, where a
// group may be named "mode:…"), so a process that gets its
// first member of a group whose count is inside the hysteresis band
// (between 90% of PRESENCE_EVENTS_MAX and the maximum) takes the mode the
// other processes are in rather than guessing.
func (p *RedisPresence) countMode(ctx context.Context, group string) (bool, error) {
	n, err := p.client.Exists(ctx, p.modePrefix+group).Result()
	return n == 1, err
}

func (p *RedisPresence) setCountMode(ctx context.Context, group string, on bool) error {
	key := p.modePrefix + group
	if on {
		// No expiry: a stale "count" (every process gone) only matters
		// inside the band, where count mode is a legitimate state.
		return p.client.Set(ctx, key, "1", 0).Err()
	}
	return p.client.Del(ctx, key).Err()
}

// refreshLoop renews this process's entries so they outlive TTL while the
// process lives; after a Redis outage it also puts them back.
func (p *RedisPresence) refreshLoop(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		entries := p.local.online()
		pipe := p.client.Pipeline()
		for _, e := range entries {
			// Eval, not Run: a pipeline cannot fall back from EVALSHA.
			joinScript.Eval(ctx, pipe, []string{p.prefix + e.group}, p.args(e.user)...)
		}
		swept := map[string]bool{}
		now := time.Now().Unix()
		for _, e := range entries {
			if !swept[e.group] {
				swept[e.group] = true
				sweepScript.Eval(ctx, pipe, []string{p.prefix + e.group}, now)
			}
		}
		if len(entries) > 0 {
			_, _ = pipe.Exec(ctx)
		}
	}
}

// Close stops refreshing and removes this process's entries.
func (p *RedisPresence) Close() error {
	p.cancel()
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, e := range p.local.online() {
		leaveScript.Run(ctx, p.client, []string{p.prefix + e.group}, p.args(e.user)...)
	}
	return nil
}
