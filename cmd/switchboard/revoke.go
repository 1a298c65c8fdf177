package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// revokeRemote tells running servers to close userID's sockets. With
// REDIS_URL it publishes on the control channel every process listens to;
// without, it calls the one server at ADDR with a short-lived service token
// signed by the shared JWT secret.
func revokeRemote(ctx context.Context, cfg Config, logger *slog.Logger, users *models.UserStore, userID int64, reason string, stdout io.Writer) error {
	if cfg.RedisURL != "" {
		conn, err := ws.DialRedis(cfg.RedisURL, cfg.RedisPrefix)
		if err != nil {
			return err
		}
		defer conn.Close()
		b := ws.NewRedisBroker(conn, logger)
		defer b.Close()
		if err := ws.PublishRevoke(ctx, b, userID, reason); err != nil {
			return fmt.Errorf("setactive: user deactivated, but telling running servers through Redis failed: %w", err)
		}
		fmt.Fprintln(stdout, "open sockets on every server were told to close")
		return nil
	}
	secret, err := jwtSecret(cfg, logger)
	if err != nil {
		return err
	}
	auth, err := middleware.NewAuth(middleware.AuthConfig{Secret: secret, Expiration: time.Minute, MaxRefresh: time.Minute}, users)
	if err != nil {
		return err
	}
	tok, err := auth.MintService("revoke", userID, time.Minute)
	if err != nil {
		return err
	}
	url := "http://" + dialable(cfg.Addr) + "/api/internal/revoke"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		fmt.Fprintf(stdout, "no server is running at %s: no open sockets to close\n", cfg.Addr)
		return nil
	} else if err != nil {
		return fmt.Errorf("setactive: user deactivated, but reaching the server at %s failed: %w", cfg.Addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("setactive: user deactivated, but the server at %s answered %s", cfg.Addr, resp.Status)
	}
	fmt.Fprintf(stdout, "open sockets on the server at %s were closed\n", cfg.Addr)
	return nil
}

// dialable turns a listen address into one to connect to (0.0.0.0 and ::
// mean this host).
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
