package models

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// PasswordHasher hashes and verifies passwords. New passwords are hashed
// with bcrypt; every Django hash format verifies too (password_django.go),
// so users imported from a Django database can log in and be rehashed.
type PasswordHasher struct {
	Cost int // bcrypt cost; bcrypt.DefaultCost when zero

	timing *failureTiming // set by NewUserStore; nil: failures not equalised
}

// MinPasswordLength is the shortest password accepted for a new user.
const MinPasswordLength = 8

// maxPasswordBytes is bcrypt's input limit; longer passwords are refused
// rather than silently truncated.
const maxPasswordBytes = 72

// Hash returns the encoded hash of password.
func (p PasswordHasher) Hash(password string) (string, error) {
	cost := p.Cost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// Verify reports whether password matches encoded, and whether encoded
// should be replaced by a fresh Hash (it uses an older scheme or cost).
// Every Django hasher verifies (password_django.go) and asks for a rehash;
// an unusable or unknown hash costs what an unknown user costs. In a
// UserStore, a failure takes as long as the slowest recent check (see
// failureTiming).
func (p PasswordHasher) Verify(encoded, password string) (ok, rehash bool) {
	defer func(start time.Time) { p.timing.done(start, ok) }(time.Now())
	if ok, known := verifyDjango(encoded, password); known {
		return ok, true
	}
	if !strings.HasPrefix(encoded, "$2") {
		p.compareDummy(password)
		return false, false
	}
	// bcrypt reads only the first 72 bytes: without this check a 72-byte
	// password would match itself followed by anything.
	if len(password) > maxPasswordBytes || bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password)) != nil {
		return false, false
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	want := p.Cost
	if want == 0 {
		want = bcrypt.DefaultCost
	}
	return true, err == nil && cost != want
}

// dummyHashes holds, per bcrypt cost, the hash compared against when a
// username does not exist, so a login for an unknown user costs as long as
// one for a known user at the configured cost.
var dummyHashes sync.Map // int → []byte

// VerifyMissing spends the time a real Verify would, and always fails.
func (p PasswordHasher) VerifyMissing(password string) {
	defer p.timing.done(time.Now(), false)
	p.compareDummy(password)
}

// compareDummy compares password against the dummy hash at p's cost.
func (p PasswordHasher) compareDummy(password string) {
	cost := p.Cost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, ok := dummyHashes.Load(cost)
	if !ok {
		b, _ := bcrypt.GenerateFromPassword([]byte("switchboard-timing-equaliser"), cost)
		h, _ = dummyHashes.LoadOrStore(cost, b)
	}
	_ = bcrypt.CompareHashAndPassword(h.([]byte), []byte(password))
}
