package models_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"switchboard/internal/testenv"
	"switchboard/migrations"
	"switchboard/models"
)

// newStore is a UserStore on a fresh migrated database of dialect.
func newStore(tb testing.TB, dialect models.Dialect) (*models.UserStore, *gorm.DB) {
	tb.Helper()
	db := testenv.Database(tb, dialect)
	return models.NewUserStore(db.Gorm, models.PasswordHasher{Cost: 4}), db.Gorm
}

func tableExists(t *testing.T, db *sql.DB, dialect models.Dialect, table string) bool {
	t.Helper()
	var n int
	var err error
	if dialect == models.SQLite {
		err = db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
	} else {
		err = db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`, table).Scan(&n)
	}
	if err != nil {
		t.Fatalf("look for table %s: %v", table, err)
	}
	return n > 0
}

// TestMigrationsUpDownUp applies every migration, rolls all back and
// applies them again, on each dialect, through the goose Provider.
func TestMigrationsUpDownUp(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := t.Context()
			db := testenv.Open(t, testenv.EmptyTarget(t, dialect))
			gdb, sqlDB := db.Gorm, db.SQL
			p, err := migrations.Provider(sqlDB, dialect)
			if err != nil {
				t.Fatal(err)
			}
			sources := p.ListSources()
			if len(sources) == 0 {
				t.Fatal("no migrations embedded")
			}
			last := sources[len(sources)-1].Version
			tables := []string{"users", "status"}

			for round := 1; round <= 2; round++ {
				res, err := p.Up(ctx)
				if err != nil {
					t.Fatalf("up (round %d): %v", round, err)
				}
				if len(res) != len(sources) {
					t.Errorf("up (round %d) applied %d migrations, want %d", round, len(res), len(sources))
				}
				if v, err := p.GetDBVersion(ctx); err != nil || v != last {
					t.Errorf("version after up (round %d) = %d, %v; want %d", round, v, err, last)
				}
				for _, tb := range tables {
					if !tableExists(t, sqlDB, dialect, tb) {
						t.Errorf("table %s missing after up (round %d)", tb, round)
					}
				}
				if pending, err := p.HasPending(ctx); err != nil || pending {
					t.Errorf("HasPending after up = %v, %v; want false", pending, err)
				}
				// The schema works, and a rolled-back database starts empty.
				users := models.NewUserStore(gdb, models.PasswordHasher{Cost: 4})
				if _, err := users.Create(ctx, models.NewUser{Username: "after-up", Password: "password123"}); err != nil {
					t.Errorf("Create after up (round %d): %v", round, err)
				}
				if round == 2 {
					break
				}
				res, err = p.DownTo(ctx, 0)
				if err != nil {
					t.Fatalf("down to 0: %v", err)
				}
				if len(res) != len(sources) {
					t.Errorf("down to 0 rolled back %d migrations, want %d", len(res), len(sources))
				}
				if v, err := p.GetDBVersion(ctx); err != nil || v != 0 {
					t.Errorf("version after down = %d, %v; want 0", v, err)
				}
				for _, tb := range tables {
					if tableExists(t, sqlDB, dialect, tb) {
						t.Errorf("table %s still there after down", tb)
					}
				}
			}
			// Up again is a no-op.
			if n, err := migrations.Up(ctx, sqlDB, dialect); err != nil || n != 0 {
				t.Errorf("migrations.Up on a current database = %d, %v; want 0, nil", n, err)
			}
		})
	}
}

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"alice", true},
		{"éva", true},
		{"日本", true},
		{"Ωμέγα", true},
		{"user@example.com", true},
		{"a.b+c-d_e", true},
		{"٣٤٥", true}, // Arabic-Indic digits
		{"a", true},
		{strings.Repeat("a", 150), true},
		{strings.Repeat("日", 150), true},
		{"", false},
		{strings.Repeat("a", 151), false},
		{strings.Repeat("日", 151), false},
		{"a b", false},
		{"a\tb", false},
		{"a\u00a0b", false}, // no-break space
		{"a\u200bb", false}, // zero-width space
		{"a😀", false},
		{"<script>", false},
		{"a/b", false},
		{"a\\b", false},
		{"a'b", false},
		{`a"b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"e\u0301", false}, // combining mark
		{"a\xffb", false},  // invalid UTF-8
		{"a%b", false},
		{"a:b", false},
	}
	for _, tt := range tests {
		err := models.ValidateUsername(tt.in)
		if (err == nil) != tt.want {
			t.Errorf("ValidateUsername(%q) = %v, want valid %v", tt.in, err, tt.want)
			continue
		}
		if err != nil {
			var e *models.Error
			if !errors.As(err, &e) || e.Code != models.EINVALID || e.Fields["username"] == "" {
				t.Errorf("ValidateUsername(%q) = %#v, want an invalid *Error naming username", tt.in, err)
			}
		}
	}
}

// FuzzValidateUsername: an accepted name is 1–150 runes of valid UTF-8
// made only of letters, digits and @.+-_ — so never markup, whitespace,
// control characters or NUL (which PostgreSQL text refuses).
func FuzzValidateUsername(f *testing.F) {
	for _, s := range []string{"alice", "éva", "日本", "", "a b", "<script>", "a\x00", strings.Repeat("a", 150), strings.Repeat("é", 151), "\xff", "e\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := models.ValidateUsername(s)
		if err != nil {
			var e *models.Error
			if !errors.As(err, &e) || e.Code != models.EINVALID || e.Fields["username"] == "" {
				t.Fatalf("ValidateUsername(%q) = %#v, want an invalid *Error naming username", s, err)
			}
			return
		}
		n := utf8.RuneCountInString(s)
		if !utf8.ValidString(s) || n < 1 || n > 150 {
			t.Fatalf("ValidateUsername(%q) = nil for %d runes (valid UTF-8 %v)", s, n, utf8.ValidString(s))
		}
		for _, r := range s {
			if unicode.IsSpace(r) || unicode.IsControl(r) || r == 0 || strings.ContainsRune("<>&\"'/\\%:;", r) {
				t.Fatalf("ValidateUsername(%q) = nil with %U", s, r)
			}
		}
	})
}

func TestUserStore(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := t.Context()
			users, _ := newStore(t, dialect)
			u, err := users.Create(ctx, models.NewUser{Username: "éva", Email: "eva@example.com", Password: "password123"})
			if err != nil {
				t.Fatalf("Create éva: %v", err)
			}
			if u.ID <= 0 || !u.IsActive || u.IsStaff || u.PasswordHash == "" || u.PasswordHash == "password123" {
				t.Errorf("Create éva = %+v, want an id, active, not staff, hashed password", u)
			}

			// Duplicate: EINVALID naming username (the REST contract's 400).
			_, err = users.Create(ctx, models.NewUser{Username: "éva", Password: "password123"})
			var e *models.Error
			if !errors.As(err, &e) || e.Code != models.EINVALID || e.Fields["username"] == "" {
				t.Errorf("Create duplicate éva = %v, want invalid naming username", err)
			}
			if err := users.CreateBatch(ctx, []string{"b1", "éva"}, u.PasswordHash); models.ErrorCode(err) != models.EINVALID {
				t.Errorf("CreateBatch with a duplicate = %v, want invalid", err)
			}

			// Authenticate.
			authTests := []struct {
				name, user, pass string
				ok               bool
			}{
				{"right", "éva", "password123", true},
				{"wrong password", "éva", "password124", false},
				{"unknown", "nobody", "password123", false},
				{"empty password", "éva", "", false},
				{"NUL in username", "éva\x00", "password123", false},
				{"invalid UTF-8 username", "\xffva", "password123", false},
				{"password plus NUL", "éva", "password123\x00", false},
			}
			for _, tt := range authTests {
				got, err := users.Authenticate(ctx, tt.user, tt.pass)
				if tt.ok && (err != nil || got.ID != u.ID) {
					t.Errorf("Authenticate(%q, %q) = %v, %v; want user %d", tt.user, tt.pass, got, err, u.ID)
				}
				if !tt.ok && err != models.ErrBadCredentials {
					t.Errorf("Authenticate(%q, %q) = %v, %v; want ErrBadCredentials", tt.user, tt.pass, got, err)
				}
			}

			// Update and deactivation.
			off, mail := false, "new@example.com"
			got, err := users.Update(ctx, u.ID, models.UserPatch{IsActive: &off, Email: &mail})
			if err != nil || got.IsActive || got.Email != mail {
				t.Errorf("Update(inactive, %s) = %+v, %v", mail, got, err)
			}
			if _, err := users.Authenticate(ctx, "éva", "password123"); err != models.ErrBadCredentials {
				t.Errorf("Authenticate inactive = %v, want ErrBadCredentials", err)
			}
			bad := "nope"
			if _, err := users.Update(ctx, u.ID, models.UserPatch{Email: &bad}); models.ErrorCode(err) != models.EINVALID {
				t.Errorf("Update(email %q) = %v, want invalid", bad, err)
			}
			if _, err := users.Update(ctx, 999999, models.UserPatch{IsActive: &off}); models.ErrorCode(err) != models.ENOTFOUND {
				t.Errorf("Update(999999) = %v, want not_found", err)
			}
			if _, err := users.Update(ctx, 999999, models.UserPatch{}); models.ErrorCode(err) != models.ENOTFOUND {
				t.Errorf("Update(999999, empty) = %v, want not_found", err)
			}

			// Get, List, Delete.
			if _, err := users.Get(ctx, 999999); models.ErrorCode(err) != models.ENOTFOUND {
				t.Errorf("Get(999999) = %v, want not_found", err)
			}
			for _, name := range []string{"ÉVA", "éva\x00", "\xff", strings.Repeat("a", 151)} {
				if _, err := users.GetByUsername(ctx, name); models.ErrorCode(err) != models.ENOTFOUND {
					t.Errorf("GetByUsername(%q) = %v, want not_found", name, err)
				}
			}
			list, err := users.List(ctx, 10, 0)
			if err != nil || len(list) != 1 {
				t.Errorf("List = %d users, %v; want 1", len(list), err)
			}
			if err := users.Delete(ctx, u.ID); err != nil {
				t.Errorf("Delete(%d) = %v", u.ID, err)
			}
			if err := users.Delete(ctx, u.ID); models.ErrorCode(err) != models.ENOTFOUND {
				t.Errorf("Delete(%d) twice = %v, want not_found", u.ID, err)
			}
		})
	}
}

// TestDjangoPasswordHash: a user imported with Django's pbkdf2_sha256 hash
// logs in with the Django password, and the hash is replaced by bcrypt.
func TestDjangoPasswordHash(t *testing.T) {
	// hashlib.pbkdf2_hmac('sha256', b'django-pass-1', b'Xq3salt9', 1000), as Django encodes it.
	const django = "pbkdf2_sha256$1000$Xq3salt9$l0fvKOK0G8GxGkCNjt0V2ebNiehGH+6bsflqsc8ARb0="
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := t.Context()
			users, db := newStore(t, dialect)
			if err := users.CreateBatch(ctx, []string{"legacy"}, django); err != nil {
				t.Fatal(err)
			}
			if _, err := users.Authenticate(ctx, "legacy", "django-pass-2"); err != models.ErrBadCredentials {
				t.Errorf("Authenticate(legacy, wrong) = %v, want ErrBadCredentials", err)
			}
			u, err := users.Authenticate(ctx, "legacy", "django-pass-1")
			if err != nil {
				t.Fatalf("Authenticate(legacy, django-pass-1) = %v, want ok", err)
			}
			var hash string
			if err := db.Raw("SELECT password_hash FROM users WHERE id = ?", u.ID).Scan(&hash).Error; err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(hash, "$2") {
				t.Errorf("hash after Django login = %q, want bcrypt", hash)
			}
			if _, err := users.Authenticate(ctx, "legacy", "django-pass-1"); err != nil {
				t.Errorf("Authenticate after rehash = %v, want ok", err)
			}
		})
	}
}

// TestConcurrentCreates races distinct and duplicate inserts: none may
// fail with anything but the duplicate error (no SQLITE_BUSY).
func TestConcurrentCreates(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			users, _ := newStore(t, dialect)
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 20 {
				for _, name := range []string{"same", "user" + string(rune('a'+i))} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := users.Create(context.Background(), models.NewUser{Username: name, Password: "password123"})
						if err != nil && !(name == "same" && models.ErrorCode(err) == models.EINVALID) {
							errs <- err
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent Create: %v", err)
			}
			if list, _ := users.List(context.Background(), 100, 0); len(list) != 21 {
				t.Errorf("after concurrent Create: %d users, want 21", len(list))
			}
		})
	}
}

func TestPasswordHasherVerify(t *testing.T) {
	h := models.PasswordHasher{Cost: 4}
	p72 := strings.Repeat("x", 71) + "y"
	enc72, err := h.Hash(p72)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := h.Hash("password123")
	enc5, _ := models.PasswordHasher{Cost: 5}.Hash("password123")
	const django = "pbkdf2_sha256$1000$Xq3salt9$l0fvKOK0G8GxGkCNjt0V2ebNiehGH+6bsflqsc8ARb0="
	tests := []struct {
		name, encoded, password string
		ok, rehash              bool
	}{
		{"bcrypt right", enc, "password123", true, false},
		{"bcrypt wrong", enc, "password124", false, false},
		{"bcrypt empty", enc, "", false, false},
		{"bcrypt other cost", enc5, "password123", true, true},
		{"bcrypt 72 bytes", enc72, p72, true, false},
		{"bcrypt 72 bytes plus one", enc72, p72 + "z", false, false},
		{"bcrypt 72 bytes plus many", enc72, p72 + strings.Repeat("z", 100), false, false},
		{"django right", django, "django-pass-1", true, true},
		{"django wrong", django, "django-pass-2", false, true},
		{"django bad iterations", "pbkdf2_sha256$abc$Xq3salt9$l0fvKOK0G8GxGkCNjt0V2ebNiehGH+6bsflqsc8ARb0=", "django-pass-1", false, true},
		{"django zero iterations", "pbkdf2_sha256$0$Xq3salt9$l0fvKOK0G8GxGkCNjt0V2ebNiehGH+6bsflqsc8ARb0=", "django-pass-1", false, true},
		{"django absurd iterations", "pbkdf2_sha256$999999999$s$aGFzaA==", "x", false, true},
		{"django bad base64", "pbkdf2_sha256$1000$Xq3salt9$!!!", "django-pass-1", false, true},
		{"django empty hash", "pbkdf2_sha256$1000$Xq3salt9$", "django-pass-1", false, true},
		{"django too few parts", "pbkdf2_sha256$1000$Xq3salt9", "django-pass-1", false, true},
		{"garbage", "not-a-hash", "password123", false, false},
		{"empty", "", "", false, false},
	}
	for _, tt := range tests {
		ok, rehash := h.Verify(tt.encoded, tt.password)
		if ok != tt.ok || (ok && rehash != tt.rehash) {
			t.Errorf("Verify(%s) = %v, %v; want %v, %v", tt.name, ok, rehash, tt.ok, tt.rehash)
		}
	}
}

func TestCreateNormalizesUsernameNFKC(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			store, _ := newStore(t, dialect)
			u, err := store.Create(context.Background(), models.NewUser{Username: "ａｌｉｃｅ", Password: "password123"})
			if err != nil || u.Username != "alice" {
				t.Fatalf("Create(full-width alice) = %v, %v; want alice", u, err)
			}
			if _, err := store.Create(context.Background(), models.NewUser{Username: "alice", Password: "password123"}); models.ErrorCode(err) != models.EINVALID {
				t.Fatalf("second alice: %v, want duplicate", err)
			}
		})
	}
}
