package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"gorm.io/gorm"

	"switchboard/handlers"
	"switchboard/middleware"
	"switchboard/migrations"
	"switchboard/models"
	"switchboard/web"
	"switchboard/ws"
)

const usage = `usage: switchboard [command]

commands:
  serve                                  run the server (the default)
  migrate                                apply database migrations and exit
  createuser --username U [--email E] [--staff]
                                         create a user; the password is read
                                         from stdin (or a prompt on a terminal)
  setactive U true|false                 activate or deactivate user U; a
                                         deactivated user's sockets are closed
  importusers --from-django URL [--table auth_user] | --from-dumpdata FILE|-
              [--model auth.user] [--dry-run]
                                         import Django's users with their ids
                                         and password hashes; URL is
                                         sqlite:///path/db.sqlite3 or
                                         postgres://… (read-only); running it
                                         again imports only what changed
  help                                   show this text

Configuration comes from the environment; see README.md.
`

// run is the whole program: main only supplies the process's environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg)
	switch cmd {
	case "serve":
		return serve(ctx, cfg, logger)
	case "migrate":
		// Also settle the shared secret file, so replicas started after
		// the migration find it.
		if _, err := jwtSecret(cfg, logger); err != nil {
			return err
		}
		db, err := openDB(ctx, cfg, logger)
		if err != nil {
			return err
		}
		return closeDB(db)
	case "createuser":
		return createUser(ctx, cfg, logger, args, stdin, stdout)
	case "setactive":
		return setActive(ctx, cfg, logger, args, stdout)
	case "importusers":
		return importUsers(ctx, cfg, logger, args, stdin, stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, cfg Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDB connects and applies pending migrations (start-up and `migrate`
// alike, so a fresh database is always usable).
func openDB(ctx context.Context, cfg Config, logger *slog.Logger) (*gorm.DB, error) {
	// SQLite: the WAL is checkpointed by a Checkpointer (newApp), not
	// inside commits.
	db, err := models.Open(cfg.Database, models.ManualCheckpoint())
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	n, err := migrations.Up(ctx, sqlDB, cfg.Database.Dialect)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	logger.Info("database ready", "dialect", cfg.Database.Dialect, "migrations_applied", n)
	return db, nil
}

func closeDB(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// minJWTSecret is the shortest JWT_SECRET accepted without a warning.
const minJWTSecret = 32

// jwtSecret returns JWT_SECRET, or the secret kept in JWTSecretFile (beside
// the SQLite file in embedded mode), generating that file on first start.
// Processes racing to create it agree: O_EXCL lets one win and the others
// read what it wrote.
func jwtSecret(cfg Config, logger *slog.Logger) ([]byte, error) {
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < minJWTSecret {
			logger.Warn("JWT_SECRET IS SHORTER THAN 32 CHARACTERS: tokens signed with it can be forged by brute force. "+
				"Accepted only so a Django SECRET_KEY works while migrating; set a long random JWT_SECRET (openssl rand -hex 32) once Django no longer issues tokens",
				"length", len(cfg.JWTSecret), "minimum", minJWTSecret)
		}
		return []byte(cfg.JWTSecret), nil
	}
	path := cfg.JWTSecretFile
	for attempt := 0; attempt < 50; attempt++ {
		if b, err := os.ReadFile(path); err == nil {
			s := strings.TrimSpace(string(b))
			if len(s) >= 32 {
				return []byte(s), nil
			}
			if attempt == 49 {
				return nil, fmt.Errorf("JWT secret file %s is shorter than 32 characters", path)
			}
			time.Sleep(20 * time.Millisecond) // another process is writing it
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read JWT secret: %w", err)
		}
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return nil, err
		}
		s := hex.EncodeToString(buf)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process won the race: read its secret
		} else if err != nil {
			return nil, fmt.Errorf("store JWT secret: %w", err)
		}
		_, err = f.WriteString(s + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("store JWT secret: %w", err)
		}
		logger.Warn("JWT_SECRET not set: generated one and stored it", "path", path)
		return []byte(s), nil
	}
	return nil, fmt.Errorf("JWT secret file %s: gave up waiting for it", path)
}

// app is the assembled server: what serve runs and tests drive.
type app struct {
	db       *gorm.DB
	users    *models.UserStore
	auth     *middleware.Auth
	hub      *ws.Hub
	broker   ws.Broker
	redis    *ws.RedisConn // nil with the in-process layer
	presence ws.Presence
	handler  http.Handler
	ckpt     *models.Checkpointer // nil on PostgreSQL
}

// checkpointEvery is how often SQLite's WAL is copied into the database
// file (models.ManualCheckpoint): the WAL holds about what is written in
// that time.
const checkpointEvery = 500 * time.Millisecond

func newApp(ctx context.Context, cfg Config, logger *slog.Logger) (*app, error) {
	secret, err := jwtSecret(cfg, logger)
	if err != nil {
		return nil, err
	}
	db, err := openDB(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	a := &app{db: db}
	var metrics *handlers.Metrics // built once the channel layer is known
	a.users = models.NewUserStore(db, models.PasswordHasher{Cost: cfg.BcryptCost})
	a.auth, err = middleware.NewAuth(middleware.AuthConfig{
		Secret:     secret,
		Expiration: cfg.JWTExpiration,
		MaxRefresh: cfg.JWTRefreshExpiration,
		OnFailure:  func(reason string) { metrics.AuthFailed(reason) },
		Cookie:     cfg.Cookie,
	}, a.users)
	if err != nil {
		closeDB(db)
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		closeDB(db)
		return nil, err
	}
	checks := map[string]handlers.Check{"database": sqlDB.PingContext}
	var redisUp func() bool // nil: in-process layer, no Redis metric
	if cfg.RedisURL == "" {
		a.broker = ws.NewMemoryBroker()
		a.presence = ws.NewMemoryPresence()
	} else {
		a.redis, err = ws.DialRedis(cfg.RedisURL, cfg.RedisPrefix)
		if err != nil {
			closeDB(db)
			return nil, err
		}
		rb := ws.NewRedisBroker(a.redis, logger)
		redisUp = rb.Up
		a.broker = rb
		a.presence = ws.NewRedisPresence(a.redis, cfg.PresenceTTL)
		checks["redis"] = a.redis.Healthy
		logger.Info("channel layer: redis", "prefix", a.redis.Prefix())
	}
	var hubOpts []ws.HubOption
	var history *models.HistoryStore
	if cfg.History.Size > 0 {
		history = models.NewHistoryStore(db)
		hubOpts = append(hubOpts, ws.WithHistory(history, cfg.History, logger))
	}
	a.hub = ws.NewHub(a.broker, hubOpts...)
	metrics = handlers.NewMetrics(a.hub, redisUp)
	a.handler = handlers.NewServer(handlers.Deps{
		Logger:         logger,
		Users:          a.users,
		Status:         models.NewStatusStore(db),
		History:        history,
		PublishAPIKey:  cfg.PublishAPIKey,
		PresenceEvents: cfg.PresenceEvents,
		// ws.PresenceFeed: count frames instead of join/leave above the max.
		PresenceEventsMax:     cfg.Presence.EventsMax,
		PresenceCountInterval: cfg.Presence.CountInterval,
		Checks:                checks,
		Metrics:               metrics,
		Auth:                  a.auth,
		Hub:                   a.hub,
		Presence:              a.presence,
		ClientConfig:          cfg.Client,
		AllowedOrigins:        cfg.AllowedOrigins,
		LoginRate:             cfg.LoginRate,
		LoginBurst:            cfg.LoginBurst,
		Page:                  web.Files(),
	})
	if cfg.Database.Dialect == models.SQLite {
		if a.ckpt, err = models.StartCheckpointer(db, checkpointEvery, logger); err != nil {
			closeDB(db)
			return nil, err
		}
		metrics.Register(a.ckpt.Collector())
	}
	return a, nil
}

// close releases the broker, presence and database.
func (a *app) close() {
	a.presence.Close()
	a.broker.Close()
	if a.redis != nil {
		a.redis.Close()
	}
	if a.ckpt != nil {
		a.ckpt.Stop()
	}
	closeDB(a.db)
}

// serve runs until ctx is cancelled (SIGTERM, Ctrl-C), then stops accepting,
// closes every socket with 1001 and returns within ShutdownTimeout.
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	a, err := newApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()
	go a.hub.RunPinger(ctx, cfg.Client.PingInterval)
	go a.hub.RunExpiry(ctx)
	warnInsecureCookie(cfg, logger)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, logger)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", "http://"+ln.Addr().String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout-500*time.Millisecond)
	defer cancel()
	// net/http does not track hijacked connections: the hub closes those.
	go srv.Shutdown(sctx)
	if err := a.hub.Shutdown(sctx); err != nil {
		logger.Warn("some sockets did not finish closing in time", "err", err)
	}
	srv.Close()
	logger.Info("stopped")
	return nil
}

// servePprof serves the profiler on its own (loopback) address, never on
// the public one.
func servePprof(addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	logger.Info("pprof listening", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		logger.Error("pprof", "err", err)
	}
}

// warnInsecureCookie warns when the token cookie would travel without
// Secure to an address other machines can reach: behind TLS, set
// JWT_COOKIE_SECURE=true so the browser never sends the token over plain
// HTTP. Loopback (development) is left alone.
func warnInsecureCookie(cfg Config, logger *slog.Logger) {
	if cfg.Cookie.Name == "" || cfg.Cookie.Secure || isLoopback(cfg.Addr) {
		return
	}
	logger.Warn("JWT_AUTH_COOKIE is set without JWT_COOKIE_SECURE=true on a non-loopback ADDR: browsers will send the token cookie over plain HTTP. "+
		"Serve switchboard behind TLS and set JWT_COOKIE_SECURE=true", "cookie", cfg.Cookie.Name, "addr", cfg.Addr)
}

// isLoopback reports whether addr (host:port) listens on loopback only;
// an empty host (all interfaces) is not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
