package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"switchboard/models"
	"switchboard/ws"
)

// envOf is a fake getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatalf("loadConfig(empty env) = %v, want defaults", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Addr", cfg.Addr, "127.0.0.1:8000"},
		{"Database", cfg.Database, models.Target{Dialect: models.SQLite, DSN: "switchboard.db"}},
		{"JWTSecret", cfg.JWTSecret, ""},
		{"JWTExpiration", cfg.JWTExpiration, 5 * time.Minute},
		{"JWTRefreshExpiration", cfg.JWTRefreshExpiration, 168 * time.Hour},
		{"RedisURL", cfg.RedisURL, ""},
		{"AllowedOrigins", len(cfg.AllowedOrigins), 0},
		{"Client", cfg.Client, ws.DefaultClientConfig()},
		{"LoginRate", cfg.LoginRate, 5.0},
		{"LoginBurst", cfg.LoginBurst, 20},
		{"BcryptCost", cfg.BcryptCost, 10},
		{"ShutdownTimeout", cfg.ShutdownTimeout, 10 * time.Second},
		{"LogLevel", cfg.LogLevel, "info"},
		{"LogFormat", cfg.LogFormat, "text"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("loadConfig(empty env).%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	pg := "postgres://u@127.0.0.1:5432/db?sslmode=disable"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(Config) string
	}{
		{"addr", map[string]string{"ADDR": ":9000"}, "", func(c Config) string { return eq(c.Addr, ":9000") }},
		{"sqlite: URL", map[string]string{"DATABASE_URL": "sqlite:/tmp/x.db"}, "", func(c Config) string {
			return eq(c.Database, models.Target{Dialect: models.SQLite, DSN: "/tmp/x.db"})
		}},
		{"sqlite:// URL", map[string]string{"DATABASE_URL": "sqlite:///tmp/y.db"}, "", func(c Config) string {
			return eq(c.Database, models.Target{Dialect: models.SQLite, DSN: "/tmp/y.db"})
		}},
		{"postgres with secret", map[string]string{"DATABASE_URL": pg, "JWT_SECRET": secret}, "", func(c Config) string {
			return eq(c.Database, models.Target{Dialect: models.Postgres, DSN: pg}) + eq(c.JWTSecret, secret)
		}},
		{"postgresql scheme", map[string]string{"DATABASE_URL": "postgresql://u@h/db", "JWT_SECRET": secret}, "", func(c Config) string {
			return eq(c.Database.Dialect, models.Postgres)
		}},
		{"durations", map[string]string{"JWT_EXPIRATION": "90s", "JWT_REFRESH_EXPIRATION": "24h"}, "", func(c Config) string {
			return eq(c.JWTExpiration, 90*time.Second) + eq(c.JWTRefreshExpiration, 24*time.Hour)
		}},
		{"ws limits", map[string]string{"WS_MAX_MESSAGE_BYTES": "1024", "WS_RATE_LIMIT": "2.5", "WS_RATE_BURST": "5", "WS_SEND_QUEUE": "8",
			"WS_PING_INTERVAL": "1s", "WS_PONG_TIMEOUT": "3s", "WS_WRITE_TIMEOUT": "2s"}, "", func(c Config) string {
			return eq(c.Client.MaxMessageBytes, int64(1024)) + eq(c.Client.RateLimit, 2.5) + eq(c.Client.RateBurst, 5) +
				eq(c.Client.SendQueue, 8) + eq(c.Client.PingInterval, time.Second) + eq(c.Client.PongTimeout, 3*time.Second) +
				eq(c.Client.WriteTimeout, 2*time.Second)
		}},
		{"ws rate limit off", map[string]string{"WS_RATE_LIMIT": "0"}, "", func(c Config) string { return eq(c.Client.RateLimit, 0.0) }},
		{"login rate limit off", map[string]string{"LOGIN_RATE_LIMIT": "0"}, "", func(c Config) string {
			// "0 disables the limit": an infinite rate, not the zero value
			// that handlers.NewServer replaces with its default.
			return eq(c.LoginRate, 0.0)
		}},
		{"origins", map[string]string{"ALLOWED_ORIGINS": " https://a.example , ,https://b.example"}, "", func(c Config) string {
			return eq(c.AllowedOrigins, []string{"https://a.example", "https://b.example"})
		}},
		{"json logs", map[string]string{"LOG_FORMAT": "json"}, "", func(c Config) string { return eq(c.LogFormat, "json") }},

		{"bad JWT_EXPIRATION", map[string]string{"JWT_EXPIRATION": "5 minutes"}, "JWT_EXPIRATION", nil},
		{"unitless JWT_EXPIRATION", map[string]string{"JWT_EXPIRATION": "300"}, "JWT_EXPIRATION", nil},
		{"negative JWT_EXPIRATION", map[string]string{"JWT_EXPIRATION": "-5m"}, "JWT_EXPIRATION", nil},
		{"zero JWT_EXPIRATION", map[string]string{"JWT_EXPIRATION": "0s"}, "JWT_EXPIRATION", nil},
		{"bad JWT_REFRESH_EXPIRATION", map[string]string{"JWT_REFRESH_EXPIRATION": "7d"}, "JWT_REFRESH_EXPIRATION", nil},
		{"bad WS_PING_INTERVAL", map[string]string{"WS_PING_INTERVAL": "often"}, "WS_PING_INTERVAL", nil},
		{"pong not after ping", map[string]string{"WS_PING_INTERVAL": "30s", "WS_PONG_TIMEOUT": "30s"}, "WS_PONG_TIMEOUT", nil},
		{"bad WS_MAX_MESSAGE_BYTES", map[string]string{"WS_MAX_MESSAGE_BYTES": "0"}, "WS_MAX_MESSAGE_BYTES", nil},
		{"bad WS_SEND_QUEUE", map[string]string{"WS_SEND_QUEUE": "many"}, "WS_SEND_QUEUE", nil},
		{"negative WS_RATE_LIMIT", map[string]string{"WS_RATE_LIMIT": "-1"}, "WS_RATE_LIMIT", nil},
		{"bad BCRYPT_COST", map[string]string{"BCRYPT_COST": "3"}, "BCRYPT_COST", nil},
		{"postgres without secret", map[string]string{"DATABASE_URL": pg}, "JWT_SECRET", nil},
		// A Django SECRET_KEY may be short: accepted (with a start-up
		// warning, checked in TestImportFromDjango) for side-by-side running.
		{"short secret", map[string]string{"JWT_SECRET": strings.Repeat("s", 31)}, "", func(c Config) string { return eq(c.JWTSecret, strings.Repeat("s", 31)) }},
		{"short secret with postgres", map[string]string{"DATABASE_URL": pg, "JWT_SECRET": "short"}, "", func(c Config) string { return eq(c.JWTSecret, "short") }},
		{"unknown database scheme", map[string]string{"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL", nil},
		{"bad REDIS_URL", map[string]string{"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL", nil},
		{"bad LOG_FORMAT", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig(%v) error = %v, want one naming %s", tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(%v) = %v, want no error", tt.env, err)
			}
			if msg := tt.check(cfg); msg != "" {
				t.Errorf("loadConfig(%v): %s", tt.env, msg)
			}
		})
	}
}

// eq returns "" when got equals want, else a "got X, want Y" message.
func eq(got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("got %#v, want %#v; ", got, want)
}
