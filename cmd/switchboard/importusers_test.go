package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"switchboard/models"
)

// These tests have a real Django (Debian's python3-django 3.2, installed by
// scripts/test.sh) create its users, then import them with `importusers`
// and log them in over HTTP against a running server.

const djangoPython = "/usr/bin/python3"

// djangoUser is one user testdata/django_users.py made, with its password.
type djangoUser struct {
	Kind        string // hasher, unsupported, superuser, inactive, unusable, bad_username, bad_email, clash_id, clash_name
	ID          int64
	Username    string
	Password    string
	Hash        string
	Email       string
	IsActive    bool    `json:"is_active"`
	IsStaff     bool    `json:"is_staff"`
	IsSuperuser bool    `json:"is_superuser"`
	DateJoined  string  `json:"date_joined"`
	LastLogin   *string `json:"last_login"`
}

type djangoProject struct {
	dir    string // db.sqlite3 and dump.json
	Secret string
	Users  []djangoUser
}

func (p *djangoProject) db() string   { return filepath.Join(p.dir, "db.sqlite3") }
func (p *djangoProject) dump() string { return filepath.Join(p.dir, "dump.json") }

func (p *djangoProject) user(t *testing.T, name string) djangoUser {
	t.Helper()
	for _, u := range p.Users {
		if u.Username == name {
			return u
		}
	}
	t.Fatalf("no Django user %q", name)
	return djangoUser{}
}

// djangoScript runs testdata/django_users.py with args and returns stdout.
func djangoScript(t *testing.T, args ...string) []byte {
	t.Helper()
	if err := exec.Command(djangoPython, "-c", "import django, argon2, bcrypt, jwt").Run(); err != nil {
		t.Skipf("Django import tests skipped: %s lacks django, argon2, bcrypt or jwt (apt-get install python3-django python3-argon2 python3-bcrypt python3-jwt; scripts/test.sh does): %v", djangoPython, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, djangoPython, append([]string{filepath.Join("testdata", "django_users.py")}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("django_users.py %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// newDjangoProject has Django migrate a fresh project and create its users.
func newDjangoProject(t *testing.T) *djangoProject {
	t.Helper()
	p := &djangoProject{dir: t.TempDir()}
	if err := json.Unmarshal(djangoScript(t, "create", p.dir), p); err != nil {
		t.Fatalf("django_users.py create: %v", err)
	}
	if len(p.Secret) >= 32 {
		t.Fatalf("Django SECRET_KEY %q is not short: the test wants one under 32 characters", p.Secret)
	}
	return p
}

// pgDjangoCopy copies the Django project's auth_user into a fresh
// PostgreSQL schema, with the table Django 3.2 creates there.
type pgDjangoCopy struct {
	base, schema string
}

func newPGDjangoCopy(t *testing.T, base string) *pgDjangoCopy {
	t.Helper()
	u, _ := url.Parse(pgSchemaURL(t, base))
	c := &pgDjangoCopy{base: base, schema: u.Query().Get("search_path")}
	psql(t, base, `CREATE TABLE `+c.schema+`.auth_user (
		"id" serial NOT NULL PRIMARY KEY, "password" varchar(128) NOT NULL,
		"last_login" timestamp with time zone NULL, "is_superuser" boolean NOT NULL,
		"username" varchar(150) NOT NULL UNIQUE, "first_name" varchar(150) NOT NULL,
		"last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL,
		"is_staff" boolean NOT NULL, "is_active" boolean NOT NULL,
		"date_joined" timestamp with time zone NOT NULL)`)
	return c
}

// sync makes the copy equal to the Django SQLite database.
func (c *pgDjangoCopy) sync(t *testing.T, p *djangoProject) {
	t.Helper()
	src, err := gorm.Open(sqlite.Open("file:"+p.db()+"?mode=ro"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	srcDB, _ := src.DB()
	defer srcDB.Close()
	dst, err := openSQL(c.base)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Exec("DELETE FROM " + c.schema + ".auth_user"); err != nil {
		t.Fatal(err)
	}
	rows, err := srcDB.Query(`SELECT id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined FROM auth_user`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		v := make([]any, 11)
		ptrs := make([]any, 11)
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{3, 8, 9} { // SQLite keeps booleans as 0/1
			v[i] = v[i].(int64) != 0
		}
		for _, i := range []int{2, 10} {
			if v[i] != nil {
				if v[i], err = asTime(v[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := dst.Exec(`INSERT INTO `+c.schema+`.auth_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, v...); err != nil {
			t.Fatalf("copy Django user %v: %v", v[0], err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// importSource is one way importusers reads the Django project.
type importSource struct {
	name   string
	target func(t *testing.T) runDB                                           // switchboard's database
	args   func(t *testing.T, p *djangoProject) (args []string, stdin string) // how to import
	sync   func(t *testing.T, p *djangoProject)                               // after Django changed
}

func importSources(t *testing.T) []importSource {
	pgBase := os.Getenv("TEST_DATABASE_URL")
	sqliteTarget := func(t *testing.T) runDB {
		return runDB{name: "sqlite", url: "sqlite:" + filepath.Join(t.TempDir(), "sb.db")}
	}
	pgTarget := func(t *testing.T) runDB {
		if pgBase == "" {
			t.Skip("TEST_DATABASE_URL not set: PostgreSQL import skipped (scripts/test.sh sets it)")
		}
		return runDB{name: "postgres", url: pgSchemaURL(t, pgBase)}
	}
	var pgCopy *pgDjangoCopy
	dumpTarget := sqliteTarget
	if pgBase != "" {
		dumpTarget = pgTarget
	}
	dumpCalls := 0
	return []importSource{
		{
			name:   "django sqlite",
			target: sqliteTarget,
			args: func(t *testing.T, p *djangoProject) ([]string, string) {
				return []string{"--from-django", "sqlite://" + p.db()}, ""
			},
			sync: func(*testing.T, *djangoProject) {},
		},
		{
			name:   "django postgres",
			target: pgTarget,
			// The copy sits in its own schema, named with --table.
			args: func(t *testing.T, p *djangoProject) ([]string, string) {
				if pgCopy == nil {
					pgCopy = newPGDjangoCopy(t, pgBase)
					pgCopy.sync(t, p)
				}
				return []string{"--from-django", pgBase, "--table", pgCopy.schema + ".auth_user"}, ""
			},
			sync: func(t *testing.T, p *djangoProject) { pgCopy.sync(t, p) },
		},
		{
			name:   "dumpdata",
			target: dumpTarget,
			// The first import reads stdin, the later ones the file.
			args: func(t *testing.T, p *djangoProject) ([]string, string) {
				dumpCalls++
				if dumpCalls == 1 {
					b, err := os.ReadFile(p.dump())
					if err != nil {
						t.Fatal(err)
					}
					return []string{"--from-dumpdata", "-"}, string(b)
				}
				return []string{"--from-dumpdata", p.dump()}, ""
			},
			sync: func(*testing.T, *djangoProject) {},
		},
	}
}

// TestImportFromDjango: Django creates users under every hasher it ships
// (plus scrypt and argon2i in Django's formats), an inactive user, two
// superusers, a non-ASCII name, an unusable password and rows switchboard
// must refuse; importusers brings them over from Django's SQLite file,
// from a PostgreSQL copy and from dumpdata; each logs in over
// /api-token-auth/ with its Django password, is rehashed and logs in again;
// a PyJWT token in rest_framework_jwt's shape signed with Django's short
// SECRET_KEY opens /ws/chat/; importing again changes nothing; Django-side
// changes are imported field by field and switchboard-side ones are kept.
func TestImportFromDjango(t *testing.T) {
	for _, src := range importSources(t) {
		t.Run(src.name, func(t *testing.T) {
			target := src.target(t)
			p := newDjangoProject(t)
			testImportFromDjango(t, src, target, p)
		})
	}
}

func testImportFromDjango(t *testing.T, src importSource, target runDB, p *djangoProject) {
	getenv := target.getenv(map[string]string{"JWT_SECRET": p.Secret})
	importusers := func(extra ...string) string {
		t.Helper()
		args, stdin := src.args(t, p)
		out, err := runCmd(t, getenv, stdin, append(append([]string{"importusers"}, args...), extra...)...)
		if err != nil {
			t.Fatalf("importusers %v = %v\n%s", args, err, out)
		}
		t.Logf("importusers %v:\n%s", extra, out)
		return out
	}
	wantLines := func(out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("importusers output lacks %q:\n%s", l, out)
			}
		}
	}

	// A switchboard user made before the import holds id 1 under the name
	// "clash": Django's id 1 ("first") and Django's "clash" (another id)
	// are both reported and skipped.
	if out, err := runCmd(t, getenv, "password123\n", "createuser", "--username", "clash"); err != nil || !strings.Contains(out, "id 1") {
		t.Fatalf("createuser clash = %v, %q; want id 1", err, out)
	}
	before := usersTable(t, target.url)
	djangoSum := fileSum(t, p.db())

	out := importusers("--dry-run")
	wantLines(out, fmt.Sprintf("%d \"u_argon2\": would be created", p.user(t, "u_argon2").ID),
		"dry run, nothing written: 18 created, 0 updated, 0 unchanged, 5 skipped")
	if after := usersTable(t, target.url); !reflect.DeepEqual(after, before) {
		t.Errorf("importusers --dry-run wrote to the database:\nbefore %v\nafter  %v", before, after)
	}

	out = importusers()
	first, clash := p.user(t, "first"), p.user(t, "clash")
	wantLines(out,
		fmt.Sprintf("%d \"first\": skipped: id %d belongs to switchboard user \"clash\"", first.ID, first.ID),
		fmt.Sprintf("%d \"clash\": skipped: username \"clash\" belongs to switchboard user 1", clash.ID),
		fmt.Sprintf("%d \"has space\": skipped: username \"has space\": enter a valid username", p.user(t, "has space").ID),
		fmt.Sprintf("%d \"ｆｕｌｌ\": skipped: username \"ｆｕｌｌ\" would be stored as \"full\"", p.user(t, "ｆｕｌｌ").ID),
		fmt.Sprintf("%d \"bademail\": skipped: email \"not an email\"", p.user(t, "bademail").ID),
		fmt.Sprintf("%d \"u_crypt\": warning: switchboard cannot verify crypt password hashes", p.user(t, "u_crypt").ID),
		"18 created, 0 updated, 0 unchanged, 5 skipped (1 id taken by another username, 1 invalid email, 2 invalid username, 1 username taken by another id), 1 warnings")
	if target.name == "postgres" {
		wantLines(out, "PostgreSQL: users created from now on get ids from 20")
	}
	if got := fileSum(t, p.db()); got != djangoSum {
		t.Error("importusers changed Django's SQLite file; it must open it read-only")
	}

	// Every imported row holds Django's values and hash.
	table := usersTable(t, target.url)
	for _, u := range p.Users {
		row, ok := table[u.ID]
		imported := u.Kind != "clash_id" && u.Kind != "clash_name" && u.Kind != "bad_username" && u.Kind != "bad_email"
		if !imported {
			if ok && row["username"] == u.Username {
				t.Errorf("Django user %q (%s) was imported, want skipped", u.Username, u.Kind)
			}
			continue
		}
		if !ok {
			t.Errorf("Django user %d %q not imported", u.ID, u.Username)
			continue
		}
		checkImportedRow(t, src.name, u, row)
	}

	srv := startServe(t, getenv)
	if !strings.Contains(srv.stderr.String(), "JWT_SECRET IS SHORTER THAN 32 CHARACTERS") {
		t.Errorf("serve with a %d-character JWT_SECRET logged no warning:\n%s", len(p.Secret), srv.stderr.String())
	}

	// Every user logs in with the password Django knew, is rehashed to
	// switchboard's own, and logs in again.
	for _, u := range p.Users {
		status, tok := srv.login(t, u.Username, u.Password)
		switch u.Kind {
		case "hasher", "superuser":
			if status != 200 {
				t.Errorf("login %q (%.20s…) with its Django password = %d, want 200", u.Username, u.Hash, status)
				continue
			}
			if h := passwordHash(t, target.url, u.ID); !strings.HasPrefix(h, "$2a$") {
				t.Errorf("after login, %q's hash = %.20s…, want switchboard's bcrypt", u.Username, h)
			}
			if status, _ := srv.login(t, u.Username, u.Password); status != 200 {
				t.Errorf("second login %q (rehashed) = %d, want 200", u.Username, status)
			}
			if status, _ := srv.login(t, u.Username, u.Password+"x"); status != 400 {
				t.Errorf("login %q with a wrong password = %d, want 400", u.Username, status)
			}
			status, me := srv.call(t, "GET", "/api/users/me", "JWT "+tok, nil)
			if status != 200 || me["id"] != float64(u.ID) || me["is_staff"] != (u.IsStaff || u.IsSuperuser) || me["email"] != u.Email {
				t.Errorf("GET /api/users/me as %q = %d %v; want id %d, is_staff %v, email %s", u.Username, status, me, u.ID, u.IsStaff || u.IsSuperuser, u.Email)
			}
		case "unsupported", "inactive", "unusable", "clash_id", "clash_name", "bad_username", "bad_email":
			if status != 400 {
				t.Errorf("login %q (%s) = %d, want 400", u.Username, u.Kind, status)
			}
			if u.Kind == "unsupported" || u.Kind == "unusable" || u.Kind == "inactive" {
				if h := passwordHash(t, target.url, u.ID); h != u.Hash {
					t.Errorf("after a refused login, %q's hash = %.20s…, want Django's kept", u.Username, h)
				}
			}
		}
	}

	// A token the running Django app would issue opens a socket.
	alice := p.user(t, "u_pbkdf2_sha256")
	tok := strings.TrimSpace(string(djangoScript(t, "token", p.Secret, fmt.Sprint(alice.ID), alice.Username, alice.Email)))
	if status, _ := srv.call(t, "GET", "/api/users/me", "JWT "+tok, nil); status != 200 {
		t.Errorf("GET /api/users/me with a PyJWT token in rest_framework_jwt's shape = %d, want 200", status)
	}
	s := dialSock(t, "ws"+strings.TrimPrefix(srv.base, "http")+"/ws/chat/?token="+url.QueryEscape(tok))
	if f := s.next("welcome", 5*time.Second); f == nil || f["user"] != alice.Username {
		ce, _ := s.waitClose(time.Second)
		t.Errorf("/ws/chat/ with a PyJWT token (no orig_iat) signed with Django's SECRET_KEY: welcome %v, close %v; want a welcome for %s", f, ce, alice.Username)
	}

	// Importing again changes nothing: not even the rehashed passwords.
	before = usersTable(t, target.url)
	out = importusers()
	wantLines(out, "0 created, 0 updated, 18 unchanged, 5 skipped")
	if after := usersTable(t, target.url); !reflect.DeepEqual(after, before) {
		t.Errorf("a second import changed the database:\nbefore %v\nafter  %v", before, after)
	}

	// Staff deactivates a user in switchboard; Django changes others.
	_, rootTok := srv.login(t, "root", p.user(t, "root").Password)
	argon := p.user(t, "u_argon2")
	if status, body := srv.call(t, "PATCH", fmt.Sprintf("/api/users/%d", argon.ID), "JWT "+rootTok, map[string]any{"is_active": false}); status != 200 {
		t.Fatalf("PATCH u_argon2 is_active=false = %d %v", status, body)
	}
	var changes struct {
		NewPassword map[string]string `json:"new_password"`
	}
	json.Unmarshal(djangoScript(t, "change", p.dir), &changes)
	src.sync(t, p)
	md5u, sha1u, eva, boss := p.user(t, "u_md5"), p.user(t, "u_sha1"), p.user(t, "éva"), p.user(t, "boss")

	before = usersTable(t, target.url)
	out = importusers("--dry-run")
	wantLines(out,
		fmt.Sprintf("%d \"u_md5\": would be updated (password)", md5u.ID),
		fmt.Sprintf("%d \"u_sha1\": would be updated (email)", sha1u.ID),
		fmt.Sprintf("%d \"éva2\": would be updated (username)", eva.ID),
		fmt.Sprintf("%d \"boss\": would be updated (is_staff)", boss.ID),
		"dry run, nothing written: 0 created, 4 updated, 14 unchanged, 5 skipped")
	if after := usersTable(t, target.url); !reflect.DeepEqual(after, before) {
		t.Errorf("importusers --dry-run wrote to the database")
	}
	out = importusers()
	wantLines(out, "0 created, 4 updated, 14 unchanged, 5 skipped")

	newPW := changes.NewPassword["u_md5"]
	loginTests := []struct {
		user, password string
		want           int
	}{
		{"u_md5", newPW, 200},         // Django's new password replaced the rehashed one
		{"u_md5", md5u.Password, 400}, // the old one is gone
		{"u_sha1", sha1u.Password, 200},
		{"éva2", eva.Password, 200},
		{"éva", eva.Password, 400},
		{"u_argon2", argon.Password, 400}, // deactivated in switchboard, unchanged in Django: kept
		{"boss", boss.Password, 200},
	}
	for _, tt := range loginTests {
		if status, _ := srv.login(t, tt.user, tt.password); status != tt.want {
			t.Errorf("after the Django changes, login %q = %d, want %d", tt.user, status, tt.want)
		}
	}
	table = usersTable(t, target.url)
	if h, _ := table[sha1u.ID]["password_hash"].(string); !strings.HasPrefix(h, "$2a$") {
		t.Errorf("u_sha1's rehashed password was replaced by %.20s…, though Django's did not change", h)
	}
	if e := table[sha1u.ID]["email"]; e != "new-sha1@example.com" {
		t.Errorf("u_sha1's email = %v, want Django's new one", e)
	}
	if a := asBoolT(t, table[argon.ID]["is_active"]); a {
		t.Error("u_argon2 is active again: a re-import undid switchboard's deactivation")
	}
	if s := asBoolT(t, table[boss.ID]["is_staff"]); s {
		t.Error("boss is still staff after Django took is_superuser away")
	}

	// New users get ids above the imported ones.
	maxImported := p.user(t, "nopass").ID
	status, body := srv.call(t, "POST", "/api/users/", "", map[string]string{"username": "newcomer", "password": "password123"})
	if id, _ := body["id"].(float64); status != 201 || int64(id) <= maxImported {
		t.Errorf("POST /api/users/ after the import = %d %v; want an id above %d", status, body, maxImported)
	}
	out = importusers()
	wantLines(out, "0 created, 0 updated, 18 unchanged, 5 skipped")
	if err := srv.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}

// checkImportedRow compares a switchboard row with the Django user.
func checkImportedRow(t *testing.T, source string, u djangoUser, row map[string]any) {
	t.Helper()
	want := map[string]any{"username": u.Username, "email": u.Email, "password_hash": u.Hash}
	for k, v := range want {
		if row[k] != v {
			t.Errorf("imported %q: %s = %v, want %v", u.Username, k, row[k], v)
		}
	}
	if got := asBoolT(t, row["is_active"]); got != u.IsActive {
		t.Errorf("imported %q: is_active = %v, want %v", u.Username, got, u.IsActive)
	}
	if got := asBoolT(t, row["is_staff"]); got != (u.IsStaff || u.IsSuperuser) {
		t.Errorf("imported %q: is_staff = %v, want %v (is_staff or is_superuser)", u.Username, got, u.IsStaff || u.IsSuperuser)
	}
	// dumpdata writes milliseconds, the databases microseconds.
	precision := time.Microsecond
	if source == "dumpdata" {
		precision = time.Millisecond
	}
	sameTime := func(field string, got any, want string) {
		t.Helper()
		w, err := time.Parse(time.RFC3339Nano, want)
		if err != nil {
			t.Fatal(err)
		}
		g, err := asTime(got)
		if err != nil || !g.Truncate(precision).Equal(w.Truncate(precision)) {
			t.Errorf("imported %q: %s = %v (%v), want %v", u.Username, field, got, err, w)
		}
	}
	sameTime("created_at (date_joined)", row["created_at"], u.DateJoined)
	if u.LastLogin != nil {
		sameTime("last_login", row["last_login"], *u.LastLogin)
	} else if row["last_login"] != nil {
		t.Errorf("imported %q: last_login = %v, want NULL", u.Username, row["last_login"])
	}
}

func asBoolT(t *testing.T, v any) bool {
	t.Helper()
	b, err := asBool(v)
	if err != nil {
		t.Fatalf("%v: %v", v, err)
	}
	return b
}

// openTarget opens switchboard's database at DATABASE_URL u.
func openTarget(t *testing.T, u string) *gorm.DB {
	t.Helper()
	target, err := models.ParseDatabaseURL(u, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := models.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// usersTable reads the whole users table, keyed by id.
func usersTable(t *testing.T, u string) map[int64]map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := openTarget(t, u).Raw("SELECT * FROM users ORDER BY id").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	m := map[int64]map[string]any{}
	for _, r := range rows {
		id, err := asInt(r["id"])
		if err != nil {
			t.Fatal(err)
		}
		m[id] = r
	}
	return m
}

func passwordHash(t *testing.T, u string, id int64) string {
	t.Helper()
	var h string
	if err := openTarget(t, u).Raw("SELECT password_hash FROM users WHERE id = ?", id).Scan(&h).Error; err != nil {
		t.Fatal(err)
	}
	return h
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestImportDumpdataBadRows: rows importusers cannot read are reported by
// their pk (or position) and the others are imported; objects of other
// models are ignored; a database only gets what was readable.
func TestImportDumpdataBadRows(t *testing.T) {
	dump := `[
 {"model": "auth.group", "pk": 1, "fields": {"name": "editors"}},
 {"model": "auth.user", "pk": 5, "fields": {"password": "md5$s4lt$645a37b388eb6af6b1480fb845682fd4", "last_login": null, "is_superuser": false,
   "username": "goodone", "email": "", "is_staff": false, "is_active": true, "date_joined": "2020-01-02T03:04:05.678Z"}},
 {"model": "auth.user", "pk": 6, "fields": {"password": "x", "username": "baddate", "date_joined": "yesterday"}},
 {"model": "auth.user", "pk": 7, "fields": {"password": "x", "username": 42, "date_joined": "2020-01-02T03:04:05Z"}},
 {"model": "auth.user", "fields": {"password": "x", "username": "natural", "date_joined": "2020-01-02T03:04:05Z"}},
 {"model": "auth.user", "pk": 8, "fields": {"password": "nonsense", "username": "oddhash", "date_joined": "2020-01-02T03:04:05"}},
 {"model": "auth.user", "pk": 9, "fields": {"username": "nopassword", "date_joined": "2020-01-02T03:04:05Z"}}
]`
	db := runDB{name: "sqlite", url: "sqlite:" + filepath.Join(t.TempDir(), "sb.db")}
	getenv := db.getenv(nil)
	out, err := runCmd(t, getenv, dump, "importusers", "--from-dumpdata", "-")
	if err != nil {
		t.Fatalf("importusers = %v\n%s", err, out)
	}
	for _, want := range []string{
		"5 \"goodone\": created",
		"6 \"baddate\": skipped: date_joined: not a datetime: \"yesterday\"",
		"7: skipped: not a dumpdata object",
		"object 5: skipped: pk: not an integer id (dumped with --natural-primary?)",
		"8 \"oddhash\": created",
		"8 \"oddhash\": warning: the password hash is in no format Django writes",
		"9 \"nopassword\": skipped: fields: username, password and date_joined are required",
		"2 created, 0 updated, 0 unchanged, 4 skipped (4 unreadable row), 1 warnings",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("importusers output lacks %q:\n%s", want, out)
		}
	}
	table := usersTable(t, db.url)
	if len(table) != 2 || table[5]["username"] != "goodone" || table[8]["username"] != "oddhash" {
		t.Errorf("users after import = %v, want goodone (5) and oddhash (8)", table)
	}

	// A file that is not a JSON array stops at once, after the summary.
	out, err = runCmd(t, getenv, `{"model": "auth.user"}`, "importusers", "--from-dumpdata", "-")
	if err == nil || !strings.Contains(out, "0 created") {
		t.Errorf("importusers on a non-array = %v, %q; want an error after the summary", err, out)
	}
}

// TestImportUsersArguments: the sources are exclusive and checked before
// anything is opened.
func TestImportUsersArguments(t *testing.T) {
	dir := t.TempDir()
	getenv := runDB{name: "sqlite", url: "sqlite:" + filepath.Join(dir, "sb.db")}.getenv(nil)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no source", nil, "exactly one of"},
		{"two sources", []string{"--from-django", "sqlite:///x.db", "--from-dumpdata", "-"}, "exactly one of"},
		{"bad scheme", []string{"--from-django", "mysql://u@h/db"}, "want sqlite:///"},
		{"missing sqlite file", []string{"--from-django", "sqlite://" + filepath.Join(dir, "nope.sqlite3")}, "no such file"},
		{"bad table", []string{"--from-django", "sqlite://" + filepath.Join(dir, "sb.db"), "--table", "auth_user; DROP TABLE users"}, "--table"},
		{"missing dumpdata", []string{"--from-dumpdata", filepath.Join(dir, "nope.json")}, "no such file"},
		{"stray argument", []string{"--from-dumpdata", "-", "extra"}, "exactly one of"},
	}
	for _, tt := range tests {
		_, err := runCmd(t, getenv, "", append([]string{"importusers"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("importusers %v (%s) = %v, want an error containing %q", tt.args, tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.sqlite3")); err == nil {
		t.Error("importusers created the missing Django database; it must only read")
	}
}
