package ws

import (
	"context"
	"slices"
	"sync"
)

// Presence counts who is online in which group, across processes when the
// implementation is shared. A user with several sockets counts once.
type Presence interface {
	// Join records one more socket of user in group and reports whether
	// the user was not online in group before (time to announce a join).
	Join(ctx context.Context, group, user string) (first bool, err error)
	// Leave records one socket fewer and reports whether it was the
	// user's last one in group (time to announce a leave).
	Leave(ctx context.Context, group, user string) (last bool, err error)
	// List returns the users online in group, sorted.
	List(ctx context.Context, group string) ([]string, error)
	// Count returns how many users are online in group (List's length,
	// without building the list): in O(1), since the presence feed asks
	// on every join and leave.
	Count(ctx context.Context, group string) (int, error)
	// Close stops background work.
	Close() error
}

// MemoryPresence is Presence for a single process.
type MemoryPresence struct {
	mu     sync.Mutex
	counts map[string]map[string]int // group → user → sockets
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty MemoryPresence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{counts: map[string]map[string]int{}}
}

func (p *MemoryPresence) Join(_ context.Context, group, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.counts[group]
	if users == nil {
		users = map[string]int{}
		p.counts[group] = users
	}
	users[user]++
	return users[user] == 1, nil
}

func (p *MemoryPresence) Leave(_ context.Context, group, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.counts[group]
	if users[user] == 0 {
		return false, nil
	}
	users[user]--
	if users[user] > 0 {
		return false, nil
	}
	delete(users, user)
	if len(users) == 0 {
		delete(p.counts, group)
	}
	return true, nil
}

func (p *MemoryPresence) List(_ context.Context, group string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.counts[group]))
	for u := range p.counts[group] {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, nil
}

func (p *MemoryPresence) Count(_ context.Context, group string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.counts[group]), nil
}

func (p *MemoryPresence) Close() error { return nil }

// groupUser is one user online in one group.
type groupUser struct{ group, user string }

// online returns every (group, user) pair with at least one socket.
func (p *MemoryPresence) online() []groupUser {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []groupUser
	for g, users := range p.counts {
		for u := range users {
			out = append(out, groupUser{g, u})
		}
	}
	return out
}
