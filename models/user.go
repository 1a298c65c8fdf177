package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"switchboard/internal/recent"
)

// User is an account. PasswordHash never leaves the models package in a
// response: handlers serialise UserJSON.
//
// The table is defined by the SQL migrations alone; the struct carries no
// schema tags (a GORM `default:true` on IsActive would turn an inserted
// false into true).
type User struct {
	ID           int64 `gorm:"primaryKey"`
	Username     string
	Email        string
	PasswordHash string
	IsActive     bool
	IsStaff      bool
	// TokenVersion is the version a token must carry to be accepted; see
	// RevokeTokens.
	TokenVersion int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// UserJSON is the public shape of a user.
type UserJSON struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	IsActive bool   `json:"is_active"`
	IsStaff  bool   `json:"is_staff"`
}

// JSON returns the user's public shape.
func (u *User) JSON() UserJSON {
	return UserJSON{ID: u.ID, Username: u.Username, Email: u.Email, IsActive: u.IsActive, IsStaff: u.IsStaff}
}

// NormalizeUsername is the one normalisation of every username that comes
// in (registration, login, createuser, setactive, lookups): surrounding
// whitespace is trimmed, as the CharFields of rest_framework_jwt's and
// DRF's serializers do, and NFKC is applied, as Django's
// AbstractBaseUser.normalize_username does, so "ａｌｉｃｅ" (full width)
// and "alice" are one name, and a decomposed "é" (e + U+0301, as macOS
// keyboards send it) logs in to the account registered with it.
func NormalizeUsername(name string) string {
	return norm.NFKC.String(strings.TrimSpace(name))
}

// MaxUsernameLength is Django's limit, in characters.
const MaxUsernameLength = 150

// ValidateUsername enforces 1–150 characters of Unicode letters, digits
// and @.+-_ (Django's UnicodeUsernameValidator).
func ValidateUsername(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 {
		return FieldError(EINVALID, "username", "this field may not be blank")
	}
	if n > MaxUsernameLength || !utf8.ValidString(name) {
		return FieldError(EINVALID, "username", "ensure this field has no more than 150 characters")
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("@.+-_", r) {
			return FieldError(EINVALID, "username", "enter a valid username: letters, digits and @/./+/-/_ only")
		}
	}
	return nil
}

// ValidateEmail accepts an empty email or one plain address.
func ValidateEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > 254 {
		return FieldError(EINVALID, "email", "ensure this field has no more than 254 characters")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return FieldError(EINVALID, "email", "enter a valid email address")
	}
	return nil
}

// ValidatePassword checks a new password's length.
func ValidatePassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return FieldError(EINVALID, "password", "ensure this field has at least 8 characters")
	}
	if len(password) > maxPasswordBytes {
		return FieldError(EINVALID, "password", "ensure this field has no more than 72 bytes")
	}
	return nil
}

// NewUser is the input to UserStore.Create.
type NewUser struct {
	Username string
	Email    string
	Password string
	IsStaff  bool
}

// UserPatch changes some of a user's fields; nil means unchanged.
type UserPatch struct {
	Email    *string
	IsActive *bool
	IsStaff  *bool
	// RevokeTokens ends every token issued so far (see RevokeTokens).
	RevokeTokens bool
}

// UserStore reads and writes users.
type UserStore struct {
	db     *gorm.DB
	hasher PasswordHasher

	// byID is Get's statement, prepared on first use (see Get).
	byIDMu sync.Mutex
	byID   atomic.Pointer[sql.Stmt]

	// recent answers GetRecent; nil until CacheRecent.
	recent *recent.Cache[int64, User]
}

// NewUserStore returns a store over db.
func NewUserStore(db *gorm.DB, hasher PasswordHasher) *UserStore {
	if hasher.timing == nil {
		hasher.timing = new(failureTiming) // failed logins all take as long
	}
	s := &UserStore{db: db, hasher: hasher}
	s.CacheRecent(RecentUserFor)
	return s
}

// Create validates and inserts a user.
func (s *UserStore) Create(ctx context.Context, in NewUser) (*User, error) {
	in.Username = NormalizeUsername(in.Username)
	if err := ValidateUsername(in.Username); err != nil {
		return nil, err
	}
	if err := ValidateEmail(in.Email); err != nil {
		return nil, err
	}
	if err := ValidatePassword(in.Password); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(in.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := &User{Username: in.Username, Email: in.Email, PasswordHash: hash, IsActive: true, IsStaff: in.IsStaff}
	if err := s.insert(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// CreateBatch inserts many users sharing one precomputed password hash, in
// one transaction. It exists for load tests and imports, where hashing
// thousands of passwords would dominate the run.
func (s *UserStore) CreateBatch(ctx context.Context, usernames []string, passwordHash string) error {
	users := make([]User, 0, len(usernames))
	for _, name := range usernames {
		if err := ValidateUsername(name); err != nil {
			return err
		}
		users = append(users, User{Username: name, PasswordHash: passwordHash, IsActive: true})
	}
	err := s.db.WithContext(ctx).CreateInBatches(users, 500).Error
	return translate(err, "username", "a user with that username already exists", EINVALID)
}

func (s *UserStore) insert(ctx context.Context, u *User) error {
	err := s.db.WithContext(ctx).Create(u).Error
	return translate(err, "username", "a user with that username already exists", EINVALID)
}

// userColumns are the columns Get scans, in scanUser's order.
const userColumns = "id, username, email, password_hash, is_active, is_staff, token_version, created_at, updated_at"

// Get loads a user by id. It is on every socket handshake and REST
// request, so it skips GORM: one statement prepared on the *sql.DB under
// it, scanned straight into the struct. (GORM's callbacks, statement
// building and reflective scan cost more CPU than the SQLite query they
// wrap.)
func (s *UserStore) Get(ctx context.Context, id int64) (*User, error) {
	stmt, err := s.byIDStmt()
	if err != nil {
		return nil, err
	}
	if s.db.Dialector.Name() != string(Postgres) {
		// SQLite answers a lookup by primary key in this process, well
		// under a millisecond: there is nothing for a cancellation to cut
		// short.
		// A context that can be cancelled costs two goroutines per query
		// (database/sql's Rows.awaitDone and the driver's interruptOnDone),
		// about 2% of a socket handshake's CPU. Already cancelled still
		// fails.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("get user %d: %w", id, err)
		}
		ctx = context.WithoutCancel(ctx)
	}
	var u User
	err = stmt.QueryRowContext(ctx, id).Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash,
		&u.IsActive, &u.IsStaff, &u.TokenVersion, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, Errorf(ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, fmt.Errorf("get user %d: %w", id, err)
	}
	return &u, nil
}

// byIDStmt prepares Get's statement once (again after a failure).
// database/sql re-prepares it on each pooled connection as needed.
func (s *UserStore) byIDStmt() (*sql.Stmt, error) {
	if stmt := s.byID.Load(); stmt != nil {
		return stmt, nil
	}
	s.byIDMu.Lock()
	defer s.byIDMu.Unlock()
	if stmt := s.byID.Load(); stmt != nil {
		return stmt, nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	q := "SELECT " + userColumns + " FROM users WHERE id = ?"
	if s.db.Dialector.Name() == string(Postgres) {
		q = "SELECT " + userColumns + " FROM users WHERE id = $1"
	}
	stmt, err := sqlDB.Prepare(q)
	if err != nil {
		return nil, fmt.Errorf("prepare get user: %w", err)
	}
	s.byID.Store(stmt)
	return stmt, nil
}

// GetByUsername loads a user by username, after NormalizeUsername.
func (s *UserStore) GetByUsername(ctx context.Context, username string) (*User, error) {
	username = NormalizeUsername(username)
	// No stored name holds NUL or invalid UTF-8, and PostgreSQL refuses
	// them in a query (an error, not "no rows"): answer not found here.
	if !utf8.ValidString(username) || strings.ContainsRune(username, 0) {
		return nil, Errorf(ENOTFOUND, "user not found")
	}
	var u User
	err := s.db.WithContext(ctx).Take(&u, "username = ?", username).Error
	if err != nil {
		return nil, translate(err, "", "user not found", ENOTFOUND)
	}
	return &u, nil
}

// ErrBadCredentials is returned by Authenticate for an unknown user, a wrong
// password or an inactive account alike, so callers cannot tell them apart.
var ErrBadCredentials = &Error{Code: EUNAUTHORIZED, Message: "unable to log in with provided credentials"}

// Authenticate checks a username and password. A legacy (Django) hash is
// replaced by a fresh one after a successful check.
func (s *UserStore) Authenticate(ctx context.Context, username, password string) (*User, error) {
	u, err := s.GetByUsername(ctx, username)
	if ErrorCode(err) == ENOTFOUND {
		s.hasher.VerifyMissing(password)
		return nil, ErrBadCredentials
	} else if err != nil {
		return nil, err
	}
	ok, rehash := s.hasher.Verify(u.PasswordHash, password)
	if !ok || !u.IsActive {
		return nil, ErrBadCredentials
	}
	if rehash {
		if h, err := s.hasher.Hash(password); err == nil {
			if err := s.db.WithContext(ctx).Model(u).Update("password_hash", h).Error; err != nil {
				return nil, fmt.Errorf("rehash password of user %d: %w", u.ID, err)
			}
			s.Forget(u.ID)
		}
	}
	return u, nil
}

// List returns users ordered by id.
func (s *UserStore) List(ctx context.Context, limit, offset int) ([]User, error) {
	var users []User
	err := s.db.WithContext(ctx).Order("id").Limit(limit).Offset(offset).Find(&users).Error
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// Update applies patch to user id and returns the result.
func (s *UserStore) Update(ctx context.Context, id int64, patch UserPatch) (*User, error) {
	changes := map[string]any{}
	if patch.Email != nil {
		if err := ValidateEmail(*patch.Email); err != nil {
			return nil, err
		}
		changes["email"] = *patch.Email
	}
	if patch.IsActive != nil {
		changes["is_active"] = *patch.IsActive
	}
	if patch.IsStaff != nil {
		changes["is_staff"] = *patch.IsStaff
	}
	if patch.RevokeTokens {
		changes["token_version"] = gorm.Expr("token_version + 1")
	}
	if len(changes) > 0 {
		changes["updated_at"] = time.Now()
		res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Updates(changes)
		s.Forget(id) // even after an error: the change may have been made
		if res.Error != nil {
			return nil, fmt.Errorf("update user %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return nil, Errorf(ENOTFOUND, "user not found")
		}
	}
	return s.Get(ctx, id)
}

// RevokeTokens ends every token user id holds: it raises the user's token
// version, so tokens issued before (carrying a lower version, or none) are
// refused, and returns the user with the new version, for which fresh
// tokens are minted.
func (s *UserStore) RevokeTokens(ctx context.Context, id int64) (*User, error) {
	return s.Update(ctx, id, UserPatch{RevokeTokens: true})
}

// ChangePassword checks oldPassword, stores newPassword (validated and
// hashed like a new user's) and revokes the user's tokens in the same
// statement. A wrong old password is an EINVALID error on old_password.
func (s *UserStore) ChangePassword(ctx context.Context, id int64, oldPassword, newPassword string) (*User, error) {
	u, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, _ := s.hasher.Verify(u.PasswordHash, oldPassword); !ok {
		return nil, FieldError(EINVALID, "old_password", "wrong password")
	}
	if err := ValidatePassword(newPassword); err != nil {
		return nil, fieldRenamed(err, "password", "new_password")
	}
	hash, err := s.hasher.Hash(newPassword)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Updates(map[string]any{
		"password_hash": hash,
		"token_version": gorm.Expr("token_version + 1"),
		"updated_at":    time.Now(),
	})
	s.Forget(id)
	if res.Error != nil {
		return nil, fmt.Errorf("change password of user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, Errorf(ENOTFOUND, "user not found")
	}
	return s.Get(ctx, id)
}

// fieldRenamed returns err with its field renamed (a validation shared by
// two forms whose fields are named differently).
func fieldRenamed(err error, from, to string) error {
	var e *Error
	if !errors.As(err, &e) || e.Fields[from] == "" {
		return err
	}
	msg := e.Fields[from]
	return FieldError(e.Code, to, msg)
}

// Delete removes user id.
func (s *UserStore) Delete(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&User{}, "id = ?", id)
	s.Forget(id)
	if res.Error != nil {
		return fmt.Errorf("delete user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return Errorf(ENOTFOUND, "user not found")
	}
	return nil
}

// translate maps GORM's translated errors to *Error.
// A duplicate key becomes dupCode: the REST contract answers a duplicate
// username with 400 and the field's name, as Django REST framework does.
func translate(err error, field, message, dupCode string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return Errorf(ENOTFOUND, "%s", message)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		if field != "" {
			return FieldError(dupCode, field, message)
		}
		return Errorf(dupCode, "%s", message)
	}
	return err
}
