package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"switchboard/ws"
)

// revokeRemote tells running servers to close userID's sockets. With
// REDIS_URL it publishes on the control channel every process listens to.
func revokeRemote(ctx context.Context, cfg Config, logger *slog.Logger, userID int64, reason string, stdout io.Writer) error {
	if cfg.RedisURL == "" {
		fmt.Fprintln(stdout, "their tokens are refused from now on; without REDIS_URL this command cannot reach a running server, so sockets already open there stay open (PATCH /api/users/{id} closes them at once)")
		return nil
	}
	b, err := ws.NewRedisBroker(ws.RedisOptions{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Logger: logger}, func(string, ws.Message) {})
	if err != nil {
		return err
	}
	defer b.Close()
	hub := ws.NewHub()
	hub.SetBroker(b)
	if err := hub.RevokeErr(ctx, userID, reason); err != nil {
		return fmt.Errorf("setactive: user deactivated, but telling running servers failed: %w", err)
	}
	fmt.Fprintln(stdout, "their open sockets on every server were told to close")
	return nil
}
