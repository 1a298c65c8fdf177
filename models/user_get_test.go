package models_test

import (
	"context"
	"errors"
	"testing"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// TestGetContext: Get answers under a live context that can be cancelled
// (the request's), fails under one already cancelled on either dialect
// (SQLite's lookup no longer watches the context while it runs, but still
// checks it first), and a cancellation after it answered changes nothing.
func TestGetContext(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			users, _ := newStore(t, dialect)
			u, err := users.Create(t.Context(), models.NewUser{Username: "gina", Password: "password123"})
			if err != nil {
				t.Fatalf("Create gina: %v", err)
			}

			ctx, cancel := context.WithCancel(t.Context())
			got, err := users.Get(ctx, u.ID)
			if err != nil || got.ID != u.ID || got.Username != "gina" || !got.IsActive {
				t.Fatalf("Get(live ctx, %d) = %+v, %v; want gina, active", u.ID, got, err)
			}
			cancel()
			if got.Username != "gina" {
				t.Errorf("after cancel, the user read = %q, want gina", got.Username)
			}

			if got, err := users.Get(ctx, u.ID); !errors.Is(err, context.Canceled) {
				t.Errorf("Get(cancelled ctx, %d) = %+v, %v; want context.Canceled", u.ID, got, err)
			}
			if _, err := users.Get(t.Context(), u.ID+1000); models.ErrorCode(err) != models.ENOTFOUND {
				t.Errorf("Get(missing id) = %v, want not_found", err)
			}
		})
	}
}
