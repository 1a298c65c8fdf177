package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"switchboard/middleware"
	"switchboard/migrations"
	"switchboard/models"
)

// layout is who is where: every member and sender of the run.
type layout struct {
	groups  []planGroup
	members []memberSpec
}

// memberSpec is one socket.
type memberSpec struct {
	Name   string
	Group  int
	URL    int
	Source string
	Sender int // index in its group's senders, or -1
}

// groupFirstRune is the first character of group g's usernames: the
// -prefix's with one group, else code point RuneBase+g.
func (c *config) groupFirstRune(g int) rune {
	if c.Groups == 1 {
		r, _ := utf8.DecodeRuneInString(c.Prefix)
		return r
	}
	return rune(c.RuneBase + g)
}

// buildLayout spreads N members over the groups in contiguous blocks, so
// that every group has members in every worker (member i goes to worker
// i mod procs), picks each group's senders and their message counts.
func buildLayout(c config) (*layout, error) {
	if err := checkGroupNames(c); err != nil {
		return nil, err
	}
	l := placeMembers(c)
	l.pickSenders(c)
	if err := l.countMessages(c); err != nil {
		return nil, err
	}
	return l, nil
}

// checkGroupNames refuses a -prefix or -rune-base that would not make
// valid usernames, one first character per group.
func checkGroupNames(c config) error {
	if c.Groups == 1 {
		if err := models.ValidateUsername(c.Prefix + "1"); err != nil || c.Prefix == "" {
			return fmt.Errorf("-prefix %q: usernames allow letters, digits and @.+-_", c.Prefix)
		}
		return nil
	}
	for g := 0; g < c.Groups; g++ {
		if r := c.groupFirstRune(g); !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return fmt.Errorf("-rune-base %#x: U+%04X (group %d) is not a letter; pick a larger letter block", c.RuneBase, r, g)
		}
	}
	return nil
}

// placeMembers names the N members and puts them in their groups, the
// first N mod groups groups getting one more, each member on a server
// and a source address in turn.
func placeMembers(c config) *layout {
	l := &layout{groups: make([]planGroup, c.Groups)}
	base, extra := c.N/c.Groups, c.N%c.Groups
	i := 0
	for g := range l.groups {
		size := base
		if g < extra {
			size++
		}
		first := string(c.groupFirstRune(g))
		prefix := first
		if c.Groups == 1 {
			prefix = c.Prefix
		}
		l.groups[g].Name = "chat-" + first
		for k := 0; k < size; k++ {
			l.groups[g].Members = append(l.groups[g].Members, i)
			l.members = append(l.members, memberSpec{
				Name:   fmt.Sprintf("%s%06d", prefix, c.userOf(i)+1),
				Group:  g,
				URL:    i % len(c.URLs),
				Source: sourceAddr(i % c.Sources),
				Sender: -1,
			})
			i++
		}
	}
	return l
}

// pickSenders makes the first K members of each group its senders, or,
// with -via publish, K publishers acknowledged by members in turn.
func (l *layout) pickSenders(c config) {
	for g := range l.groups {
		grp := &l.groups[g]
		k := c.Senders
		if c.Via == "publish" {
			if k == 0 {
				k = 1
				if c.Groups == 1 {
					k = 4
				}
			}
			for j := 0; j < k; j++ {
				grp.Senders = append(grp.Senders, planSender{Name: fmt.Sprintf("pub%d.%d", g, j), Member: -1,
					Ack: grp.Members[j%len(grp.Members)]})
			}
			continue
		}
		if k == 0 || k > len(grp.Members) {
			k = len(grp.Members)
		}
		if c.Scenario == "idle" {
			k = 0
		}
		for j := 0; j < k; j++ {
			m := grp.Members[j]
			l.members[m].Sender = j
			grp.Senders = append(grp.Senders, planSender{Name: l.members[m].Name, Member: m, Ack: m})
		}
	}
}

// countMessages gives every sender its message count (-msgs, or with
// -rate and -duration the run's messages shared out) and its place in the
// global order that -rate interleaves: the first sender of every group,
// then the second, and so on.
func (l *layout) countMessages(c config) error {
	total := l.senderCount()
	msgs := make([]int, total)
	if c.Scenario != "idle" {
		if c.Rate > 0 && c.Duration > 0 {
			all := int(math.Round(c.Rate * c.Duration.Seconds()))
			for o := range msgs {
				msgs[o] = all / total
				if o < all%total {
					msgs[o]++
				}
			}
		} else {
			for o := range msgs {
				msgs[o] = c.Msgs
			}
		}
	}
	order := 0
	for j := 0; order < total; j++ {
		for g := range l.groups {
			if j < len(l.groups[g].Senders) {
				s := &l.groups[g].Senders[j]
				s.Order, s.Msgs = order, msgs[order]
				if s.Msgs > maxMessages {
					return fmt.Errorf("%d messages per sender: more than %d", s.Msgs, maxMessages)
				}
				order++
			}
		}
	}
	return nil
}

// senderCount is the number of senders in all groups.
func (l *layout) senderCount() int {
	n := 0
	for _, g := range l.groups {
		n += len(g.Senders)
	}
	return n
}

// messageCount is the number of messages all senders send.
func (l *layout) messageCount() int64 {
	var n int64
	for _, g := range l.groups {
		for _, s := range g.Senders {
			n += int64(s.Msgs)
		}
	}
	return n
}

// userOf is the user number of member i: i itself, or with -users i mod
// users, so that several sockets belong to one user.
func (c *config) userOf(i int) int {
	if c.Users > 0 {
		return i % c.Users
	}
	return i
}

// sourceAddr is the k-th client source address: 127.0.0.2, 127.0.0.3, …
// Each gives its own ~28,000 ephemeral ports towards one server.
func sourceAddr(k int) string { return fmt.Sprintf("127.0.0.%d", 2+k) }

// serverFlags name the one server a publish, recover or storm run works
// on, and how to mint tokens it accepts.
type serverFlags struct {
	URL       string
	ServerPID int
	DB        string
	JWTSecret string
	Timeout   time.Duration
	Quiet     bool
}

// register adds -url, -server-pid (pidUse says what the run reads of it),
// -db, -jwt-secret, -timeout and -q to set.
func (f *serverFlags) register(set *flag.FlagSet, getenv func(string) string, pidUse string, timeout time.Duration) {
	set.StringVar(&f.URL, "url", "http://127.0.0.1:8000", "server base URL, loopback only")
	set.IntVar(&f.ServerPID, "server-pid", 0, pidUse)
	set.StringVar(&f.DB, "db", getenv("DATABASE_URL"), "server's DATABASE_URL (default $DATABASE_URL; empty: embedded SQLite switchboard.db)")
	set.StringVar(&f.JWTSecret, "jwt-secret", getenv("JWT_SECRET"), "server's JWT secret (default $JWT_SECRET, else the embedded mode's <sqlite>.jwt-secret file)")
	set.DurationVar(&f.Timeout, "timeout", timeout, "hard limit for the whole run")
	set.BoolVar(&f.Quiet, "q", false, "no progress lines on stderr")
}

// check refuses a server that is not on loopback or, with -server-pid, a
// process this machine does not have, and gives the server's HTTP and
// WebSocket base URLs.
func (f serverFlags) check(ctx context.Context) (httpBase, wsBase string, v4 bool, err error) {
	httpBase, wsBase, v4, err = checkLoopback(ctx, f.URL)
	if err != nil {
		return "", "", false, err
	}
	if f.ServerPID > 0 {
		if _, err := readProc(f.ServerPID); err != nil {
			return "", "", false, err
		}
	}
	return httpBase, wsBase, v4, nil
}

// checkLoopback resolves raw (an http or ws URL) and refuses anything but
// a loopback server. It returns the http and ws base URLs with the host
// replaced by the address it resolved to, and whether that is IPv4.
func checkLoopback(ctx context.Context, raw string) (httpBase, wsBase string, v4 bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", false, fmt.Errorf("-url %q: %w", raw, err)
	}
	var scheme string
	switch u.Scheme {
	case "http", "ws":
		scheme = "http"
	case "https", "wss":
		scheme = "https"
	default:
		return "", "", false, fmt.Errorf("-url %q: want http://host:port", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", "", false, fmt.Errorf("-url %q: no host", raw)
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(rctx, host)
		if err != nil {
			return "", "", false, fmt.Errorf("-url %q: %w", raw, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return "", "", false, fmt.Errorf("-url %q: host has no address", raw)
	}
	var pick net.IP
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", "", false, fmt.Errorf("-url %q: %s is not a loopback address; wsbench only loads servers on this machine", raw, ip)
		}
		if pick == nil || ip.To4() != nil && pick.To4() == nil {
			pick = ip
		}
	}
	hp := net.JoinHostPort(pick.String(), port)
	ws := map[string]string{"http": "ws", "https": "wss"}[scheme]
	return scheme + "://" + hp, ws + "://" + hp, pick.To4() != nil, nil
}

// benchUser is what a member's token needs of its user.
type benchUser struct {
	ID           int64
	TokenVersion int64 // tokens carrying an older version are refused
}

// ensureUsers creates the members that do not exist yet (one bcrypt hash
// for all, batches in one transaction) and returns every member's id and
// token version.
func ensureUsers(ctx context.Context, dbURL string, names []string) (map[string]benchUser, models.Target, error) {
	target, err := models.ParseDatabaseURL(dbURL, "switchboard.db")
	if err != nil {
		return nil, target, err
	}
	db, err := models.Open(target)
	if err != nil {
		return nil, target, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, target, err
	}
	defer sqlDB.Close()
	if _, err := migrations.Up(ctx, sqlDB, target.Dialect); err != nil {
		return nil, target, err
	}

	users := make(map[string]benchUser, len(names))
	lookup := func(chunk []string) error {
		var rows []struct {
			ID           int64
			Username     string
			TokenVersion int64
		}
		err := db.WithContext(ctx).Model(&models.User{}).Select("id", "username", "token_version").
			Where("username IN ?", chunk).Find(&rows).Error
		if err != nil {
			return fmt.Errorf("look up users: %w", err)
		}
		for _, r := range rows {
			users[r.Username] = benchUser{ID: r.ID, TokenVersion: r.TokenVersion}
		}
		return nil
	}
	const chunk = 500
	for i := 0; i < len(names); i += chunk {
		if err := lookup(names[i:min(i+chunk, len(names))]); err != nil {
			return nil, target, err
		}
	}
	var missing []string
	for _, n := range names {
		if _, ok := users[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		hasher := models.PasswordHasher{Cost: 4}
		hash, err := hasher.Hash("wsbench-password")
		if err != nil {
			return nil, target, err
		}
		store := models.NewUserStore(db, hasher)
		for i := 0; i < len(missing); i += 5000 {
			if err := store.CreateBatch(ctx, missing[i:min(i+5000, len(missing))], hash); err != nil {
				return nil, target, fmt.Errorf("create %d users: %w", len(missing), err)
			}
		}
		for i := 0; i < len(missing); i += chunk {
			if err := lookup(missing[i:min(i+chunk, len(missing))]); err != nil {
				return nil, target, err
			}
		}
	}
	for _, n := range names {
		if _, ok := users[n]; !ok {
			return nil, target, fmt.Errorf("user %q missing after creation", n)
		}
	}
	return users, target, nil
}

// loadSecret returns the server's JWT secret: the flag, else the embedded
// mode's file beside the SQLite database (what the server generated).
func loadSecret(flagValue string, target models.Target) ([]byte, error) {
	if flagValue != "" {
		return []byte(flagValue), nil
	}
	path := target.SecretFile()
	if path == "" {
		return nil, errors.New("no JWT secret: give -jwt-secret or JWT_SECRET (the server's)")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no JWT secret: give -jwt-secret, or start the server once so that it writes %s", path)
	} else if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// mintToken signs a member's token with the server's one signer, with
// the claims the server's login gives it.
func mintToken(secret []byte, u benchUser, username string, now time.Time, ttl time.Duration) (string, error) {
	return middleware.SignToken(secret, middleware.Claims{UserID: u.ID, Username: username,
		Exp: now.Add(ttl), OrigIat: now, Version: u.TokenVersion})
}

// usersAndSecret creates the named users where missing (ensureUsers) and
// returns their ids and token versions with the server's secret
// (loadSecret), what every scenario needs to sign its members' tokens.
func usersAndSecret(ctx context.Context, dbURL, jwtSecret string, names []string) (map[string]benchUser, []byte, error) {
	users, target, err := ensureUsers(ctx, dbURL, names)
	if err != nil {
		return nil, nil, err
	}
	secret, err := loadSecret(jwtSecret, target)
	if err != nil {
		return nil, nil, err
	}
	return users, secret, nil
}

// memberNames returns the n member names of a run: prefix000001 to
// prefix plus n in six digits (the first letter of the prefix picks the
// chat group).
func memberNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%06d", prefix, i+1)
	}
	return names
}

// progressLog returns the "wsbench: …" progress logger on w, silent with
// -q (quiet).
func progressLog(quiet bool, w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(w, "wsbench: "+format+"\n", args...)
		}
	}
}
