package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"switchboard/models"
)

// importUsers is `switchboard importusers`: it copies Django's users, with
// their ids and password hashes, into switchboard's database. Every row is
// reported and a bad one never stops the rest; a summary ends the run.
func importUsers(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("importusers", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fromDjango := fs.String("from-django", "", "Django database: sqlite:///path/to/db.sqlite3 or postgres://… (opened read-only)")
	table := fs.String("table", "auth_user", "user table in the Django database (a custom user model with auth_user's columns)")
	fromDump := fs.String("from-dumpdata", "", "JSON written by `manage.py dumpdata auth.user` (- for stdin)")
	model := fs.String("model", "auth.user", "model of the user objects in the dumpdata file")
	dryRun := fs.Bool("dry-run", false, "print what would change and write nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*fromDjango == "") == (*fromDump == "") || fs.NArg() > 0 {
		return errors.New("importusers: give exactly one of --from-django URL or --from-dumpdata FILE")
	}
	var src djangoSource
	var err error
	if *fromDjango != "" {
		src, err = openDjangoDB(ctx, *fromDjango, *table)
	} else {
		src, err = openDumpdata(*fromDump, *model, stdin)
	}
	if err != nil {
		return fmt.Errorf("importusers: %w", err)
	}
	defer src.Close()

	db, err := openDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB(db)
	users := models.NewUserStore(db, models.PasswordHasher{Cost: cfg.BcryptCost})
	im := users.ImportDjango(*dryRun)
	rep := newImportReport(stdout, *dryRun)
	readErr := src.Each(func(row djangoRow) {
		if row.err != "" {
			rep.add(row.label(), models.ImportResult{Outcome: models.ImportSkipped, Reason: row.err, Why: "unreadable row"})
			return
		}
		rep.add(row.label(), im.Import(ctx, row.user))
	})
	next, closeErr := im.Close(ctx)
	rep.summary(next)
	if readErr != nil {
		return fmt.Errorf("importusers: reading the source stopped early: %w", readErr)
	}
	return closeErr
}

// djangoRow is one user read from a source, or why it could not be read.
type djangoRow struct {
	user models.DjangoUser
	ref  string // how to name the row when user.ID is unknown
	err  string
}

func (r djangoRow) label() string {
	switch {
	case r.user.ID != 0 && r.user.Username != "":
		return fmt.Sprintf("%d %q", r.user.ID, r.user.Username)
	case r.user.ID != 0:
		return strconv.FormatInt(r.user.ID, 10)
	}
	return r.ref
}

// djangoSource yields Django users in order.
type djangoSource interface {
	// Each calls fn for every row; an error means the source itself
	// failed and the rows after it were not read.
	Each(fn func(djangoRow)) error
	Close() error
}

// tableName accepts "table" or "schema.table" of plain identifiers.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// djangoDB reads a Django database: SQLite opened with mode=ro, PostgreSQL
// inside a read-only transaction, so the import cannot write to Django.
type djangoDB struct {
	ctx   context.Context
	db    *sql.DB
	tx    *sql.Tx
	query string
}

func openDjangoDB(ctx context.Context, rawURL, table string) (*djangoDB, error) {
	if rawURL == "" {
		return nil, errors.New("--from-django needs a URL")
	}
	target, err := models.ParseDatabaseURL(rawURL, "")
	if err != nil {
		return nil, fmt.Errorf("--from-django: want sqlite:///path/to/db.sqlite3 or postgres://…")
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("--table %q: want a table name such as auth_user or schema.auth_user", table)
	}
	cfg := &gorm.Config{Logger: logger.Discard}
	var gdb *gorm.DB
	switch target.Dialect {
	case models.SQLite:
		if _, err := os.Stat(target.DSN); err != nil {
			return nil, fmt.Errorf("Django database: %w", err)
		}
		gdb, err = gorm.Open(sqlite.Open("file:"+target.DSN+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(5000)"), cfg)
	case models.Postgres:
		gdb, err = gorm.Open(postgres.Open(target.DSN), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open Django database: %w", err)
	}
	db, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open Django database: %w", err)
	}
	quoted := `"` + strings.ReplaceAll(table, ".", `"."`) + `"`
	return &djangoDB{ctx: ctx, db: db, tx: tx, query: "SELECT id, username, email, password, is_active, is_staff, is_superuser, date_joined, last_login FROM " + quoted + " ORDER BY id"}, nil
}

func (d *djangoDB) Each(fn func(djangoRow)) error {
	rows, err := d.tx.QueryContext(d.ctx, d.query)
	if err != nil {
		return fmt.Errorf("read Django users: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var id, username, email, password, active, staff, superuser, joined, lastLogin any
		if err := rows.Scan(&id, &username, &email, &password, &active, &staff, &superuser, &joined, &lastLogin); err != nil {
			return fmt.Errorf("read Django users: %w", err)
		}
		var row djangoRow
		row.ref = fmt.Sprintf("row %d", n)
		u := &row.user
		var errs []string
		check := func(field string, err error) {
			if err != nil {
				errs = append(errs, field+": "+err.Error())
			}
		}
		u.ID, err = asInt(id)
		check("id", err)
		u.Username, err = asString(username)
		check("username", err)
		u.Email, err = asString(email)
		check("email", err)
		u.Password, err = asString(password)
		check("password", err)
		u.IsActive, err = asBool(active)
		check("is_active", err)
		u.IsStaff, err = asBool(staff)
		check("is_staff", err)
		u.IsSuperuser, err = asBool(superuser)
		check("is_superuser", err)
		u.DateJoined, err = asTime(joined)
		check("date_joined", err)
		if lastLogin != nil {
			t, err := asTime(lastLogin)
			check("last_login", err)
			u.LastLogin = &t
		}
		row.err = strings.Join(errs, "; ")
		fn(row)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read Django users: %w", err)
	}
	return nil
}

func (d *djangoDB) Close() error {
	d.tx.Rollback()
	return d.db.Close()
}

func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	case []byte:
		return strconv.ParseInt(string(x), 10, 64)
	}
	return 0, fmt.Errorf("not an integer: %T", v)
}

func asString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case nil:
		return "", nil // NULL email in a custom user model
	}
	return "", fmt.Errorf("not text: %T", v)
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case string:
		return strconv.ParseBool(x)
	case []byte:
		return strconv.ParseBool(string(x))
	}
	return false, fmt.Errorf("not a boolean: %T", v)
}

// djangoTimeLayouts are the ways Django and its databases write a
// datetime. One without an offset is UTC, which is how Django stores
// datetimes on SQLite with USE_TZ = True (the default).
var djangoTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
}

func asTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case []byte:
		return parseDjangoTime(string(x))
	case string:
		return parseDjangoTime(x)
	}
	return time.Time{}, fmt.Errorf("not a datetime: %T", v)
}

func parseDjangoTime(s string) (time.Time, error) {
	for _, layout := range djangoTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a datetime: %q", s)
}

// dumpdata reads the JSON array `manage.py dumpdata auth.user` writes,
// one object at a time.
type dumpdata struct {
	r     io.Reader
	close func() error
	model string
}

func openDumpdata(path, model string, stdin io.Reader) (*dumpdata, error) {
	if path == "-" {
		return &dumpdata{r: stdin, close: func() error { return nil }, model: model}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &dumpdata{r: f, close: f.Close, model: model}, nil
}

func (d *dumpdata) Close() error { return d.close() }

// dumpObject is one object of a dumpdata file.
type dumpObject struct {
	Model  string          `json:"model"`
	PK     json.RawMessage `json:"pk"`
	Fields struct {
		Username    *string `json:"username"`
		Email       *string `json:"email"`
		Password    *string `json:"password"`
		IsActive    *bool   `json:"is_active"`
		IsStaff     bool    `json:"is_staff"`
		IsSuperuser bool    `json:"is_superuser"`
		DateJoined  *string `json:"date_joined"`
		LastLogin   *string `json:"last_login"`
	} `json:"fields"`
}

func (d *dumpdata) Each(fn func(djangoRow)) error {
	dec := json.NewDecoder(d.r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("dumpdata: want a JSON array of objects (%v)", err)
	}
	for n := 1; dec.More(); n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("dumpdata object %d: %w", n, err)
		}
		var obj dumpObject
		row := djangoRow{ref: fmt.Sprintf("object %d", n)}
		if err := json.Unmarshal(raw, &obj); err != nil {
			// Name the row by its pk if that much can be read.
			var head struct{ PK json.RawMessage }
			json.Unmarshal(raw, &head)
			row.user.ID, _ = strconv.ParseInt(string(head.PK), 10, 64)
			row.err = "not a dumpdata object: " + err.Error()
			fn(row)
			continue
		}
		if !strings.EqualFold(obj.Model, d.model) {
			continue // another model in a full dump
		}
		row.user, row.err = obj.user()
		fn(row)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("dumpdata: %w", err)
	}
	return nil
}

// user converts the object, or says what is wrong with it.
func (o dumpObject) user() (models.DjangoUser, string) {
	var u models.DjangoUser
	var errs []string
	if id, err := strconv.ParseInt(string(o.PK), 10, 64); err == nil {
		u.ID = id
	} else {
		errs = append(errs, "pk: not an integer id (dumped with --natural-primary?)")
	}
	f := o.Fields
	if f.Username == nil || f.Password == nil || f.DateJoined == nil {
		errs = append(errs, "fields: username, password and date_joined are required")
	}
	if f.Username != nil {
		u.Username = *f.Username
	}
	if f.Password != nil {
		u.Password = *f.Password
	}
	if f.DateJoined != nil {
		var err error
		if u.DateJoined, err = parseDjangoTime(*f.DateJoined); err != nil {
			errs = append(errs, "date_joined: "+err.Error())
		}
	}
	if f.Email != nil {
		u.Email = *f.Email
	}
	u.IsActive = f.IsActive == nil || *f.IsActive // Django's default is active
	u.IsStaff, u.IsSuperuser = f.IsStaff, f.IsSuperuser
	if f.LastLogin != nil {
		t, err := parseDjangoTime(*f.LastLogin)
		if err != nil {
			errs = append(errs, "last_login: "+err.Error())
		}
		u.LastLogin = &t
	}
	return u, strings.Join(errs, "; ")
}

// importReport prints one line per user that changes or is skipped, and
// the summary.
type importReport struct {
	w        io.Writer
	dryRun   bool
	counts   map[string]int
	why      map[string]int
	warnings int
}

func newImportReport(w io.Writer, dryRun bool) *importReport {
	return &importReport{w: w, dryRun: dryRun, counts: map[string]int{}, why: map[string]int{}}
}

func (r *importReport) add(label string, res models.ImportResult) {
	r.counts[res.Outcome]++
	verb := res.Outcome
	if r.dryRun && res.Outcome != models.ImportSkipped {
		verb = "would be " + verb
	}
	switch res.Outcome {
	case models.ImportCreated:
		fmt.Fprintf(r.w, "%s: %s\n", label, verb)
	case models.ImportUpdated:
		fmt.Fprintf(r.w, "%s: %s (%s)\n", label, verb, strings.Join(res.Fields, ", "))
	case models.ImportSkipped:
		r.why[res.Why]++
		fmt.Fprintf(r.w, "%s: skipped: %s\n", label, res.Reason)
	}
	for _, w := range res.Warnings {
		r.warnings++
		fmt.Fprintf(r.w, "%s: warning: %s\n", label, w)
	}
}

func (r *importReport) summary(nextID int64) {
	var b strings.Builder
	if r.dryRun {
		b.WriteString("dry run, nothing written: ")
	}
	fmt.Fprintf(&b, "%d created, %d updated, %d unchanged, %d skipped",
		r.counts[models.ImportCreated], r.counts[models.ImportUpdated], r.counts[models.ImportUnchanged], r.counts[models.ImportSkipped])
	if len(r.why) > 0 {
		kinds := make([]string, 0, len(r.why))
		for k := range r.why {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for i, k := range kinds {
			kinds[i] = fmt.Sprintf("%d %s", r.why[k], k)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(kinds, ", "))
	}
	if r.warnings > 0 {
		fmt.Fprintf(&b, ", %d warnings", r.warnings)
	}
	fmt.Fprintln(r.w, b.String())
	if nextID > 0 {
		fmt.Fprintf(r.w, "PostgreSQL: users created from now on get ids from %d\n", nextID)
	}
}
