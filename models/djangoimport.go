package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// DjangoUser is one row of Django's auth_user (or a custom user model with
// the same columns), as `switchboard importusers` reads it.
type DjangoUser struct {
	ID          int64
	Username    string
	Email       string
	Password    string // Django's encoded hash, kept as is
	IsActive    bool
	IsStaff     bool
	IsSuperuser bool // makes the user staff in switchboard
	DateJoined  time.Time
	LastLogin   *time.Time
}

// Outcomes of importing one Django user.
const (
	ImportCreated   = "created"
	ImportUpdated   = "updated"
	ImportUnchanged = "unchanged"
	ImportSkipped   = "skipped"
)

// ImportResult says what importing one Django user did (or, in a dry run,
// would do).
type ImportResult struct {
	Outcome  string   // ImportCreated, ImportUpdated, ImportUnchanged or ImportSkipped
	Fields   []string // the fields an update changes, in Django's names
	Reason   string   // why it was skipped
	Why      string   // the reason's kind, for the summary: "username taken", "invalid username", …
	Warnings []string // imported, but something needs the operator's eye
}

// djangoSnapshot is the Django row as last imported, kept in
// users.django_import. A re-import compares Django's values with it, not
// with switchboard's: a field Django has not changed since is left alone,
// whatever switchboard did to it (a rehash at login, a deactivation).
type djangoSnapshot struct {
	Username   string  `json:"username"`
	Email      string  `json:"email"`
	Password   string  `json:"password"`
	IsActive   bool    `json:"is_active"`
	IsStaff    bool    `json:"is_staff"`
	DateJoined string  `json:"date_joined"`
	LastLogin  *string `json:"last_login"`
}

// importedUser is the users row with the columns the import reads and
// writes (migrations 00003 added last_login and django_import).
type importedUser struct {
	ID           int64 `gorm:"primaryKey"`
	Username     string
	Email        string
	PasswordHash string
	IsActive     bool
	IsStaff      bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLogin    *time.Time
	DjangoImport *string
}

func (importedUser) TableName() string { return "users" }

// DjangoImport upserts Django users into the store, one transaction per
// user, so one bad row never undoes or stops the others. Close finishes it.
type DjangoImport struct {
	db     *gorm.DB
	dryRun bool
	maxID  int64
}

// ImportDjango starts an import. A dry run only reads: Import says what it
// would do and nothing is written.
func (s *UserStore) ImportDjango(dryRun bool) *DjangoImport {
	return &DjangoImport{db: s.db, dryRun: dryRun}
}

// Import creates or updates one Django user, keeping its id. It never
// returns an error: a row that cannot be imported is ImportSkipped with the
// reason.
func (im *DjangoImport) Import(ctx context.Context, du DjangoUser) ImportResult {
	if why, reason := checkDjangoUser(du); reason != "" {
		return ImportResult{Outcome: ImportSkipped, Reason: reason, Why: why}
	}
	var res ImportResult
	apply := func(tx *gorm.DB) error {
		var err error
		res, err = im.importOne(tx, du)
		return err
	}
	var err error
	if im.dryRun {
		err = apply(im.db.WithContext(ctx))
	} else {
		err = im.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if tx.Dialector.Name() == string(SQLite) {
				// Take SQLite's write lock before reading, as BEGIN
				// IMMEDIATE would: a read transaction that later writes
				// fails at once if the server wrote in between.
				if err := tx.Exec("UPDATE users SET id = id WHERE 0").Error; err != nil {
					return err
				}
			}
			return apply(tx)
		})
	}
	if err != nil {
		return ImportResult{Outcome: ImportSkipped, Reason: "database error: " + err.Error(), Why: "database error"}
	}
	if res.Outcome != ImportSkipped {
		im.maxID = max(im.maxID, du.ID)
		res.Warnings = append(res.Warnings, passwordWarnings(du.Password)...)
	}
	return res
}

// checkDjangoUser returns why du cannot be imported (its kind and the
// message), or "". Usernames get registration's normalisation and
// validation; one that normalisation would change is refused rather than
// altered behind the operator's back.
func checkDjangoUser(du DjangoUser) (why, reason string) {
	if du.ID <= 0 {
		return "invalid id", fmt.Sprintf("id %d: ids must be positive", du.ID)
	}
	if n := NormalizeUsername(du.Username); n != du.Username {
		return "invalid username", fmt.Sprintf("username %q would be stored as %q by switchboard (registration's normalisation): rename it in Django and import again", du.Username, n)
	}
	if err := ValidateUsername(du.Username); err != nil {
		return "invalid username", fmt.Sprintf("username %q: %s", du.Username, fieldMessage(err, "username"))
	}
	if err := ValidateEmail(du.Email); err != nil {
		return "invalid email", fmt.Sprintf("email %q: %s", du.Email, fieldMessage(err, "email"))
	}
	if !utf8.ValidString(du.Password) || strings.ContainsRune(du.Password, 0) {
		return "invalid password hash", "password hash is not valid text"
	}
	if du.DateJoined.IsZero() {
		return "invalid row", "date_joined is missing"
	}
	return "", ""
}

// fieldMessage is the validation message of err for field.
func fieldMessage(err error, field string) string {
	var e *Error
	if errors.As(err, &e) && e.Fields[field] != "" {
		return e.Fields[field]
	}
	return err.Error()
}

// passwordWarnings says when an imported hash will never let its user log
// in with a password.
func passwordWarnings(encoded string) []string {
	switch alg, ok := DjangoHasher(encoded); {
	case ok || alg == "unusable":
		return nil
	case alg == "":
		return []string{"the password hash is in no format Django writes: the user cannot log in with a password"}
	default:
		return []string{fmt.Sprintf("switchboard cannot verify %s password hashes: the user cannot log in with a password until it is set again in Django (with a supported hasher) and imported again", alg)}
	}
}

// snapshot is du as stored in users.django_import.
func snapshot(du DjangoUser) djangoSnapshot {
	s := djangoSnapshot{
		Username:   du.Username,
		Email:      du.Email,
		Password:   du.Password,
		IsActive:   du.IsActive,
		IsStaff:    du.IsStaff || du.IsSuperuser,
		DateJoined: djangoTime(du.DateJoined).Format(time.RFC3339Nano),
	}
	if du.LastLogin != nil {
		v := djangoTime(*du.LastLogin).Format(time.RFC3339Nano)
		s.LastLogin = &v
	}
	return s
}

// djangoTime is t in UTC at Django's (and PostgreSQL's) microsecond
// precision.
func djangoTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (im *DjangoImport) importOne(tx *gorm.DB, du DjangoUser) (ImportResult, error) {
	var byName, byID importedUser
	nameErr := tx.Take(&byName, "username = ?", du.Username).Error
	if nameErr == nil && byName.ID != du.ID {
		return ImportResult{Outcome: ImportSkipped, Reason: fmt.Sprintf("username %q belongs to switchboard user %d", du.Username, byName.ID), Why: "username taken by another id"}, nil
	} else if nameErr != nil && !errors.Is(nameErr, gorm.ErrRecordNotFound) {
		return ImportResult{}, nameErr
	}
	want := snapshot(du)
	wantJSON, err := json.Marshal(want)
	if err != nil {
		return ImportResult{}, err
	}
	idErr := tx.Take(&byID, "id = ?", du.ID).Error
	if errors.Is(idErr, gorm.ErrRecordNotFound) {
		u := importedUser{
			ID: du.ID, Username: du.Username, Email: du.Email, PasswordHash: du.Password,
			IsActive: du.IsActive, IsStaff: want.IsStaff, CreatedAt: djangoTime(du.DateJoined), UpdatedAt: time.Now(),
			DjangoImport: ptr(string(wantJSON)),
		}
		if du.LastLogin != nil {
			u.LastLogin = ptr(djangoTime(*du.LastLogin))
		}
		if !im.dryRun {
			if err := tx.Create(&u).Error; err != nil {
				return ImportResult{}, err
			}
		}
		return ImportResult{Outcome: ImportCreated}, nil
	} else if idErr != nil {
		return ImportResult{}, idErr
	}

	var last *djangoSnapshot
	if byID.DjangoImport != nil {
		var s djangoSnapshot
		if json.Unmarshal([]byte(*byID.DjangoImport), &s) == nil {
			last = &s
		}
	}
	// A different username at this id is another person, unless it is the
	// name Django had when this user was last imported: then Django renamed
	// the user, and the rename is imported like any other change.
	if byID.Username != du.Username && (last == nil || last.Username != byID.Username) {
		return ImportResult{Outcome: ImportSkipped, Reason: fmt.Sprintf("id %d belongs to switchboard user %q", du.ID, byID.Username), Why: "id taken by another username"}, nil
	}

	// Field by field: a value Django changed since the last import (or
	// every value, for a user never imported) replaces switchboard's.
	changes := map[string]any{}
	var fields []string
	set := func(field, column string, djangoChanged, differs bool, value any) {
		if djangoChanged && differs {
			changes[column] = value
			fields = append(fields, field)
		}
	}
	fresh := last == nil
	set("username", "username", fresh || last.Username != want.Username, byID.Username != du.Username, du.Username)
	set("email", "email", fresh || last.Email != want.Email, byID.Email != du.Email, du.Email)
	set("password", "password_hash", fresh || last.Password != want.Password, byID.PasswordHash != du.Password, du.Password)
	set("is_active", "is_active", fresh || last.IsActive != want.IsActive, byID.IsActive != du.IsActive, du.IsActive)
	set("is_staff", "is_staff", fresh || last.IsStaff != want.IsStaff, byID.IsStaff != want.IsStaff, want.IsStaff)
	joined := djangoTime(du.DateJoined)
	set("date_joined", "created_at", fresh || last.DateJoined != want.DateJoined, !djangoTime(byID.CreatedAt).Equal(joined), joined)
	var lastLogin *time.Time
	if du.LastLogin != nil {
		lastLogin = ptr(djangoTime(*du.LastLogin))
	}
	loginDiffers := (byID.LastLogin == nil) != (lastLogin == nil) ||
		(lastLogin != nil && !djangoTime(*byID.LastLogin).Equal(*lastLogin))
	set("last_login", "last_login", fresh || !equalPtr(last.LastLogin, want.LastLogin), loginDiffers, lastLogin)

	if byID.DjangoImport == nil || *byID.DjangoImport != string(wantJSON) {
		changes["django_import"] = string(wantJSON)
	}
	if len(changes) == 0 {
		return ImportResult{Outcome: ImportUnchanged}, nil
	}
	if !im.dryRun {
		if len(fields) > 0 {
			changes["updated_at"] = time.Now()
		}
		if err := tx.Model(&importedUser{}).Where("id = ?", du.ID).UpdateColumns(changes).Error; err != nil {
			return ImportResult{}, err
		}
	}
	if len(fields) == 0 {
		// Only the record of what Django holds moved (a Django change
		// switchboard already had): the user is as it was.
		return ImportResult{Outcome: ImportUnchanged}, nil
	}
	return ImportResult{Outcome: ImportUpdated, Fields: fields}, nil
}

func ptr[T any](v T) *T { return &v }

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Close finishes the import. On PostgreSQL it moves the users id sequence
// past every id in the table, so users registered afterwards get ids above
// the imported ones (SQLite's AUTOINCREMENT already counts explicit ids).
// It returns the next id PostgreSQL will give when it moved the sequence,
// else 0 (never lowering it: a re-import changes nothing).
func (im *DjangoImport) Close(ctx context.Context) (int64, error) {
	if im.dryRun || im.maxID == 0 || im.db.Dialector.Name() != string(Postgres) {
		return 0, nil
	}
	var next int64
	err := im.db.WithContext(ctx).Raw(`
		SELECT setval(pg_get_serial_sequence('users', 'id'), m) + 1
		FROM (SELECT MAX(id) AS m FROM users) t
		WHERE m > COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)`).Scan(&next).Error
	if err != nil {
		return 0, fmt.Errorf("move the users id sequence: %w", err)
	}
	return next, nil
}
