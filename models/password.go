package models

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// PasswordHasher hashes and verifies passwords. New passwords are hashed
// with bcrypt; Django's "pbkdf2_sha256$iter$salt$hash" strings verify too,
// so users imported from a Django database can log in and be rehashed.
type PasswordHasher struct {
	Cost int // bcrypt cost; bcrypt.DefaultCost when zero
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
func (p PasswordHasher) Verify(encoded, password string) (ok, rehash bool) {
	if strings.HasPrefix(encoded, "pbkdf2_sha256$") {
		return verifyDjangoPBKDF2(encoded, password), true
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

func verifyDjangoPBKDF2(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 || iter > 10_000_000 {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, []byte(parts[2]), iter, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}
