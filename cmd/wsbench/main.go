// Command wsbench is switchboard's WebSocket load generator. It creates
// its users directly in the database, mints their tokens with the
// server's secret, dials /ws/chat/?token=… from several loopback source
// addresses (and, with -procs, several processes), and measures connect
// cost, fan-out throughput, latency and loss.
//
//	wsbench idle   -n 5000 -hold 10s -server-pid PID
//	wsbench fanout -n 200 -msgs 200 -server-pid PID
//	wsbench fanout -n 200 -via publish -api-key KEY
//	wsbench groups -n 10000 -groups 1000 -msgs 10
//	wsbench publish -kind status -clients 8 -subscribers 10 -api-key KEY
//	wsbench cross  -url http://127.0.0.1:8001 -url http://127.0.0.1:8002 -n 1000
//
// Every run prints a table and one line "RESULT {json}". It only talks to
// loopback addresses, and stops by itself after -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workerEnv marks a process started by -procs: it reads its plan from
// stdin instead of parsing flags (so test binaries can be workers too).
const workerEnv = "WSBENCH_WORKER"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Getenv(workerEnv) == "1" {
		err = workerMain(ctx, os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

// Hard bounds, whatever the flags say.
const (
	maxSockets  = 200_000
	maxProcs    = 32
	maxMessages = 10_000_000 // per sender
	maxTimeout  = 2 * time.Hour
)

// config is a parsed command line.
type config struct {
	Scenario   string
	URLs       []string
	N          int
	Groups     int
	Msgs       int
	Senders    int // per group; 0: every member (socket) or the default publishers
	Rate       float64
	Duration   time.Duration
	Window     int
	Via        string
	APIKey     string
	Hold       time.Duration
	Prefix     string
	Users      int // idle: sockets share this many users (0: one user per socket)
	RuneBase   int
	Procs      int
	Sources    int
	Conc       int
	ServerPIDs []int
	DB         string
	JWTSecret  string
	Timeout    time.Duration
	Settle     time.Duration
	StartAt    time.Time // the send phase starts then (zero: once settled)
	Quiet      bool
	CPUProfile string
}

const usage = `usage: wsbench SCENARIO [flags]

scenarios:
  idle     N sockets in one group, held open (-hold): server KiB per socket,
           connect rate, handshake latency, failures by close code
  fanout   N members in one group; each sender sends -msgs messages, as fast
           as -window allows or paced by -rate: deliveries/s, latency,
           lost/duplicate/out-of-order, CPU per 1,000 deliveries
  groups   fanout over -groups groups (default 10,000 sockets, 1,000 groups)
  cross    fanout with members split over two -url servers (shared Redis)

  recover  -n members of one group leave, -missed messages are sent, and they
           all reconnect at once with since/epoch: recovered, lost,
           duplicated, storm duration, server CPU (own flags: wsbench recover -h)
  storm    -n members are cut at once (the server killed and restarted) and
           come back as the page does (backoff, since/epoch): time until all
           are welcomed, failures, recovery (own flags: wsbench storm -h)

  publish  -clients HTTP clients POST /api/groups/{g}/messages (-kind group)
           or PUT /api/status/{key} (-kind status) for -duration, to
           -subscribers sockets: requests/s, latency, server CPU per
           request, lost at the subscribers (own flags: wsbench publish -h)

  markdown LABEL=FILE…  tables for BENCHMARKS.md from saved outputs
  compare ROW=FILE,FILE… …  repeated idle runs of several servers: medians
           of connects/s and KiB per socket, each run beside them
  history  W=ON_FILE,OFF_FILE… [R=FILE]  history on against off, and the
           recovery storm, for BENCHMARKS.md

flags:
`

type intList []int

func (l *intList) String() string { return fmt.Sprint(*l) }
func (l *intList) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a process id, got %q", s)
	}
	*l = append(*l, n)
	return nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, usage)
		return cfg, errors.New("missing scenario")
	}
	cfg.Scenario, args = args[0], args[1:]
	fs := flag.NewFlagSet("wsbench "+cfg.Scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var urls stringList
	var pids intList
	fs.Var(&urls, "url", "server base URL, loopback only (repeat for cross; default http://127.0.0.1:8000)")
	fs.IntVar(&cfg.N, "n", 0, "sockets (default: idle 1000, fanout 200, groups 10000, cross 200)")
	fs.IntVar(&cfg.Groups, "groups", 0, "groups the sockets are spread over (default 1; groups 1000)")
	fs.IntVar(&cfg.Msgs, "msgs", 0, "messages per sender (default: fanout/cross 20, groups 10)")
	fs.IntVar(&cfg.Senders, "senders", 0, "senders per group (default: every member; with -via publish 4, or 1 per group)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "pace all senders together at this many messages/s (0: as fast as -window allows)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "with -rate: send rate×duration messages in all, instead of -msgs per sender")
	fs.IntVar(&cfg.Window, "window", 0, "messages a group's senders may have in flight, sent but not yet received back (default: 262144/n, between 1 and 256)")
	fs.StringVar(&cfg.Via, "via", "socket", "how messages are sent: socket (members send text frames) or publish (POST /api/groups/{group}/messages)")
	fs.StringVar(&cfg.APIKey, "api-key", getenv("PUBLISH_API_KEY"), "publish API key (default $PUBLISH_API_KEY)")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, "idle: how long to hold the sockets open")
	fs.IntVar(&cfg.Users, "users", 0, "idle: the sockets belong to this many users, socket i to user i mod users (0: one user per socket)")
	fs.StringVar(&cfg.Prefix, "prefix", "b", "username prefix with one group; its first character names the group (chat-b)")
	fs.IntVar(&cfg.RuneBase, "rune-base", 0x4E00, "with several groups, group g's usernames start with this code point + g (a letter block: CJK by default)")
	fs.IntVar(&cfg.Procs, "procs", 1, "worker processes holding the sockets (1: this process)")
	fs.IntVar(&cfg.Sources, "sources", 0, "loopback source addresses 127.0.0.2, .3, … (default: one per 20,000 sockets)")
	fs.IntVar(&cfg.Conc, "conc", 64, "concurrent connection attempts per process")
	fs.Var(&pids, "server-pid", "server process id for RSS and CPU figures (repeat for cross)")
	fs.StringVar(&cfg.DB, "db", getenv("DATABASE_URL"), "server's DATABASE_URL (default $DATABASE_URL; empty: embedded SQLite switchboard.db)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", getenv("JWT_SECRET"), "server's JWT secret (default $JWT_SECRET, else the embedded mode's <sqlite>.jwt-secret file)")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "hard limit for the whole run")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "after connecting, wait until no frame has arrived for this long (the join storm is over)")
	var startMs int64
	fs.Int64Var(&startMs, "start-unix-ms", 0, "start sending at this wall-clock time, in ms since 1970 (0: 100 ms after settling); two runs side by side against two servers started 25 ms apart send out of phase")
	fs.BoolVar(&cfg.Quiet, "q", false, "no progress lines on stderr")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write this process's CPU profile here (with -procs 1 it covers the sockets too)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.URLs, cfg.ServerPIDs = urls, pids
	if startMs < 0 {
		return cfg, errors.New("-start-unix-ms must not be negative")
	} else if startMs > 0 {
		cfg.StartAt = time.UnixMilli(startMs)
	}
	return cfg, cfg.defaults()
}

// defaults fills scenario defaults and checks bounds.
func (c *config) defaults() error {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	switch c.Scenario {
	case "idle":
		def(&c.N, 1000)
	case "fanout":
		def(&c.N, 200)
		def(&c.Msgs, 20)
	case "groups":
		def(&c.N, 10000)
		def(&c.Groups, 1000)
		def(&c.Msgs, 10)
	case "cross":
		def(&c.N, 200)
		def(&c.Msgs, 20)
		if len(c.URLs) < 2 {
			return errors.New("cross: give two servers with -url twice")
		}
	default:
		return fmt.Errorf("unknown scenario %q (want idle, fanout, groups or cross)", c.Scenario)
	}
	def(&c.Groups, 1)
	if len(c.URLs) == 0 {
		c.URLs = []string{"http://127.0.0.1:8000"}
	}
	switch {
	case c.N < 1 || c.N > maxSockets:
		return fmt.Errorf("-n %d: want 1..%d", c.N, maxSockets)
	case c.Groups < 1 || c.Groups > c.N:
		return fmt.Errorf("-groups %d: want 1..n (%d)", c.Groups, c.N)
	case c.Msgs < 0 || c.Msgs > maxMessages:
		return fmt.Errorf("-msgs %d: want 0..%d", c.Msgs, maxMessages)
	case c.Senders < 0:
		return errors.New("-senders must not be negative")
	case c.Rate < 0 || c.Rate > 10_000_000:
		return errors.New("-rate must be between 0 and 10,000,000")
	case c.Duration != 0 && c.Rate == 0:
		return errors.New("-duration needs -rate")
	case c.Window < 0:
		return errors.New("-window must not be negative")
	case c.Via != "socket" && c.Via != "publish":
		return fmt.Errorf("-via %q: want socket or publish", c.Via)
	case c.Via == "publish" && c.Scenario == "idle":
		return errors.New("-via publish makes no sense for idle")
	case c.Users < 0 || c.Users > c.N:
		return fmt.Errorf("-users %d: want 0..n (%d)", c.Users, c.N)
	case c.Users > 0 && (c.Scenario != "idle" || c.Groups != 1):
		return errors.New("-users: only for idle with one group")
	case c.Procs < 1 || c.Procs > maxProcs:
		return fmt.Errorf("-procs %d: want 1..%d", c.Procs, maxProcs)
	case c.Sources < 0 || c.Sources > 250:
		return fmt.Errorf("-sources %d: want 1..250", c.Sources)
	case c.Conc < 1 || c.Conc > 10000:
		return fmt.Errorf("-conc %d: want 1..10000", c.Conc)
	case c.Timeout <= 0 || c.Timeout > maxTimeout:
		return fmt.Errorf("-timeout %s: want at most %s", c.Timeout, maxTimeout)
	case c.Hold < 0 || c.Hold >= c.Timeout:
		return errors.New("-hold must be shorter than -timeout")
	case !c.StartAt.IsZero() && c.StartAt.Sub(time.Now()) > c.Timeout:
		return errors.New("-start-unix-ms is later than -timeout from now")
	}
	if c.Sources == 0 {
		c.Sources = (c.N + 19_999) / 20_000
	}
	return nil
}

// run is the whole command: main supplies the process's arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "markdown" {
		return markdown(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "compare" {
		return compare(args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "recover" {
		return recoverRun(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "publish" {
		return publishRun(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "storm" {
		return stormRun(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "history" {
		return historyMarkdown(args[1:], stdout)
	}
	return scenario[config, result]{
		parse:   parseFlags,
		profile: func(c config) string { return c.CPUProfile },
		bench:   bench,
		print:   printResult,
		ok:      func(r *result) bool { return r.OK },
	}.run(ctx, args, getenv, stdout, stderr)
}

// scenario is what differs between wsbench's runs (idle/fanout, publish,
// recover, storm): run does the rest the same way for each.
type scenario[C, R any] struct {
	parse   func(args []string, getenv func(string) string, stderr io.Writer) (C, error)
	profile func(C) string // the -cpuprofile path; nil where the run has no such flag
	bench   func(ctx context.Context, cfg C, stderr io.Writer) (*R, error)
	print   func(io.Writer, *R)
	ok      func(*R) bool
}

// run parses the flags (-h prints them and ends here), runs the bench under
// the CPU profile asked for, prints whatever result it got, and turns a
// finished run that was not ok into errNotOK, so the exit status says it.
func (s scenario[C, R]) run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := s.parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.profile != nil {
		stop, err := startCPUProfile(s.profile(cfg))
		if err != nil {
			return err
		}
		defer stop()
	}
	res, err := s.bench(ctx, cfg, stderr)
	if res != nil {
		s.print(stdout, res)
		if err == nil && !s.ok(res) {
			err = errNotOK
		}
	}
	return err
}

// errNotOK is run's error when the run finished but something failed:
// a connection, a message, or the deadline.
var errNotOK = errors.New("run not ok: see the table above")

// startCPUProfile writes a CPU profile of wsbench itself to path (-cpuprofile)
// until stop is called; with an empty path it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
