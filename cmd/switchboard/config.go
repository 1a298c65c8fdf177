package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// Config is switchboard's configuration. loadConfig is the only code that
// reads the environment.
type Config struct {
	Addr                 string
	Database             models.Target
	JWTSecret            string // empty: read or generated in JWTSecretFile
	JWTSecretFile        string // where a generated secret is kept
	JWTExpiration        time.Duration
	JWTRefreshExpiration time.Duration
	AllowedOrigins       []string
	RedisURL             string
	RedisPrefix          string
	PresenceTTL          time.Duration
	PresenceEvents       bool
	Presence             ws.PresenceConfig // PRESENCE_EVENTS_MAX, PRESENCE_COUNT_INTERVAL
	History              ws.HistoryConfig  // Size 0: history off
	PublishAPIKey        string
	Client               ws.ClientConfig
	LoginRate            float64
	LoginBurst           int
	ShutdownTimeout      time.Duration
	LogLevel             string
	LogFormat            string
	PprofAddr            string
	BcryptCost           int

	// Cookie is JWT_AUTH_COOKIE (empty Name: off), JWT_COOKIE_SAMESITE and
	// JWT_COOKIE_SECURE.
	Cookie middleware.CookieConfig
}

// defaultSQLitePath is the embedded database, in the working directory.
const defaultSQLitePath = "switchboard.db"

func loadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		Addr:          or(getenv("ADDR"), "127.0.0.1:8000"),
		JWTSecret:     getenv("JWT_SECRET"),
		JWTSecretFile: getenv("JWT_SECRET_FILE"),
		RedisURL:      getenv("REDIS_URL"),
		RedisPrefix:   or(getenv("REDIS_PREFIX"), "switchboard:"),
		PublishAPIKey: getenv("PUBLISH_API_KEY"),
		LogLevel:      or(getenv("LOG_LEVEL"), "info"),
		LogFormat:     or(getenv("LOG_FORMAT"), "text"),
		PprofAddr:     getenv("PPROF_ADDR"),
		Client:        ws.DefaultClientConfig(),
		Presence:      ws.DefaultPresenceConfig(),
	}
	var err error
	if cfg.Database, err = models.ParseDatabaseURL(getenv("DATABASE_URL"), defaultSQLitePath); err != nil {
		return cfg, err
	}
	for _, o := range strings.Split(getenv("ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	p := parser{getenv: getenv}
	cfg.JWTExpiration = p.duration("JWT_EXPIRATION", 5*time.Minute)
	cfg.JWTRefreshExpiration = p.duration("JWT_REFRESH_EXPIRATION", 168*time.Hour)
	cfg.ShutdownTimeout = p.duration("SHUTDOWN_TIMEOUT", 10*time.Second)
	cfg.PresenceTTL = p.duration("PRESENCE_TTL", 60*time.Second)
	cfg.History.Size = p.integer("HISTORY_SIZE", 1000, 0)
	cfg.History.TTL = p.duration("HISTORY_TTL", 168*time.Hour)
	cfg.History.RecoveryMax = p.integer("HISTORY_RECOVERY_MAX", 1000, 0)
	switch v := getenv("PRESENCE_EVENTS"); v {
	case "", "on", "true", "1":
		cfg.PresenceEvents = true
	case "off", "false", "0":
	default:
		p.fail(fmt.Errorf("PRESENCE_EVENTS=%q: want on or off", v))
	}
	cfg.Presence.EventsMax = p.integer("PRESENCE_EVENTS_MAX", cfg.Presence.EventsMax, 1)
	cfg.Presence.CountInterval = p.duration("PRESENCE_COUNT_INTERVAL", cfg.Presence.CountInterval)
	c := &cfg.Client
	c.MaxMessageBytes = int64(p.integer("WS_MAX_MESSAGE_BYTES", int(c.MaxMessageBytes), 1))
	c.RateLimit = p.float("WS_RATE_LIMIT", c.RateLimit)
	c.RateBurst = p.integer("WS_RATE_BURST", c.RateBurst, 1)
	c.SendQueue = p.integer("WS_SEND_QUEUE", c.SendQueue, 1)
	c.PingInterval = p.duration("WS_PING_INTERVAL", c.PingInterval)
	c.PongTimeout = p.duration("WS_PONG_TIMEOUT", c.PongTimeout)
	c.WriteTimeout = p.duration("WS_WRITE_TIMEOUT", c.WriteTimeout)
	c.AuthTimeout = p.duration("WS_AUTH_TIMEOUT", c.AuthTimeout)
	c.TokenGrace = p.duration("WS_TOKEN_GRACE", c.TokenGrace)
	switch v := getenv("WS_TOKEN_EXPIRY"); v {
	case "", "enforce":
	case "ignore":
		c.EnforceExpiry = false
	default:
		p.fail(fmt.Errorf("WS_TOKEN_EXPIRY=%q: want enforce or ignore", v))
	}
	cfg.Cookie = p.cookie()
	cfg.LoginRate = p.float("LOGIN_RATE_LIMIT", 5) // 0 disables it
	cfg.LoginBurst = p.integer("LOGIN_RATE_BURST", 20, 1)
	cfg.BcryptCost = p.integer("BCRYPT_COST", 10, 4)
	if p.err != nil {
		return cfg, p.err
	}
	if c.PongTimeout <= c.PingInterval {
		return cfg, fmt.Errorf("WS_PONG_TIMEOUT (%s) must be longer than WS_PING_INTERVAL (%s)", c.PongTimeout, c.PingInterval)
	}
	if cfg.Presence.CountInterval <= 0 {
		return cfg, fmt.Errorf("PRESENCE_COUNT_INTERVAL must be positive")
	}
	if cfg.PresenceTTL < 3*time.Second {
		return cfg, fmt.Errorf("PRESENCE_TTL must be at least 3s")
	}
	if cfg.ShutdownTimeout < time.Second {
		return cfg, fmt.Errorf("SHUTDOWN_TIMEOUT must be at least 1s")
	}
	if cfg.JWTExpiration <= 0 || cfg.JWTRefreshExpiration <= 0 {
		return cfg, fmt.Errorf("JWT_EXPIRATION and JWT_REFRESH_EXPIRATION must be positive")
	}
	// A JWT_SECRET shorter than minJWTSecret (32) is accepted (a Django
	// SECRET_KEY may be, while migrating); jwtSecret warns at start-up.
	if cfg.JWTSecret == "" && cfg.JWTSecretFile == "" {
		if cfg.Database.Dialect == models.Postgres {
			return cfg, fmt.Errorf("JWT_SECRET (or JWT_SECRET_FILE, shared by every process) is required with PostgreSQL (generate one: openssl rand -hex 32)")
		}
		cfg.JWTSecretFile = cfg.Database.SecretFile()
	}
	if cfg.RedisURL != "" && !strings.HasPrefix(cfg.RedisURL, "redis://") && !strings.HasPrefix(cfg.RedisURL, "rediss://") {
		return cfg, fmt.Errorf("REDIS_URL must start with redis:// or rediss://")
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		return cfg, fmt.Errorf("LOG_FORMAT must be text or json")
	}
	return cfg, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parser reads typed variables and keeps the first error.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	s := p.getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		p.fail(fmt.Errorf("%s=%q: want a Go duration such as 5m or 168h", name, s))
		return def
	}
	return d
}

func (p *parser) integer(name string, def, min int) int {
	s := p.getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		p.fail(fmt.Errorf("%s=%q: want an integer ≥ %d", name, s, min))
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	s := p.getenv(name)
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		p.fail(fmt.Errorf("%s=%q: want a number ≥ 0 (0 disables the limit)", name, s))
		return def
	}
	return f
}

// cookie reads JWT_AUTH_COOKIE, JWT_COOKIE_SAMESITE (Lax, Strict or None;
// None requires Secure, which browsers demand of it) and
// JWT_COOKIE_SECURE (true or false).
func (p *parser) cookie() middleware.CookieConfig {
	c := middleware.CookieConfig{Name: p.getenv("JWT_AUTH_COOKIE"), SameSite: http.SameSiteLaxMode}
	if c.Name != "" && (&http.Cookie{Name: c.Name}).Valid() != nil {
		p.fail(fmt.Errorf("JWT_AUTH_COOKIE=%q: want a cookie name such as jwt", c.Name))
	}
	switch v := p.getenv("JWT_COOKIE_SAMESITE"); strings.ToLower(v) {
	case "", "lax":
	case "strict":
		c.SameSite = http.SameSiteStrictMode
	case "none":
		c.SameSite = http.SameSiteNoneMode
	default:
		p.fail(fmt.Errorf("JWT_COOKIE_SAMESITE=%q: want Lax, Strict or None", v))
	}
	switch v := p.getenv("JWT_COOKIE_SECURE"); strings.ToLower(v) {
	case "", "false", "0", "off":
	case "true", "1", "on":
		c.Secure = true
	default:
		p.fail(fmt.Errorf("JWT_COOKIE_SECURE=%q: want true or false", v))
	}
	if c.SameSite == http.SameSiteNoneMode && !c.Secure {
		p.fail(fmt.Errorf("JWT_COOKIE_SAMESITE=None requires JWT_COOKIE_SECURE=true (browsers refuse a SameSite=None cookie without Secure)"))
	}
	return c
}

func (p *parser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}
