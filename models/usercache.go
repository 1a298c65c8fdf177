package models

import (
	"context"
	"time"

	"switchboard/internal/recent"
)

// recentUsersMax bounds GetRecent's cache to about 2 × 4,096 users
// (about 2 MiB).
const recentUsersMax = 4096

// RecentUserFor is how long GetRecent trusts a lookup by default: the
// time within which a deactivation or revocation must take effect
// everywhere even should its notice (Forget) be lost, e.g. with Redis
// down.
const RecentUserFor = time.Second

// CacheRecent sets how long GetRecent trusts a lookup (NewUserStore:
// RecentUserFor; 0 turns the cache off): a user whose lookup began less
// than ttl ago is answered from memory, so a user's many sockets
// connecting close together cost one query.
func (s *UserStore) CacheRecent(ttl time.Duration) {
	s.recent = nil
	if ttl > 0 {
		s.recent = recent.New[int64, User](ttl, recentUsersMax)
	}
}

// GetRecent is Get, possibly answered by a lookup that began less than
// the CacheRecent ttl ago with no Forget since. Missing users are not
// cached.
func (s *UserStore) GetRecent(ctx context.Context, id int64) (*User, error) {
	c := s.recent
	if c == nil {
		return s.Get(ctx, id)
	}
	began := time.Now()
	u, gen, ok := c.Get(id, began)
	if ok {
		return &u, nil
	}
	fresh, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c.Put(id, *fresh, began, gen)
	return fresh, nil
}

// Forget drops user id from GetRecent's cache at once, and keeps out what
// lookups already under way read. The store calls it on its own changes
// of a user; the server calls it for every revocation the hub hears
// (handlers.NewServer), from this process or another.
func (s *UserStore) Forget(id int64) {
	if s.recent != nil {
		s.recent.Forget(id)
	}
}
