package models

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Django password hashes. Users imported from Django keep the hash Django
// stored ("algorithm$params$salt$hash"); PasswordHasher.Verify checks it
// with the parameters written in it and the caller then replaces it with a
// fresh switchboard hash. Each verifier follows Django's own hasher in
// django/contrib/auth/hashers.py (Django 1.x to 5.x):
//
//	pbkdf2_sha256$<iterations>$<salt>$<base64 hash>
//	pbkdf2_sha1$<iterations>$<salt>$<base64 hash>
//	argon2$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<b64 salt>$<b64 hash>   (argon2i too)
//	bcrypt_sha256$$2b$<cost>$<bcrypt of hex(sha256(password))>
//	bcrypt$$2b$<cost>$<bcrypt of the first 72 bytes>
//	scrypt$<N>$<salt>$<r>$<p>$<base64 hash>                   (Django 4.2+)
//	sha1$<salt>$<hex sha1(salt+password)>
//	md5$<salt>$<hex md5(salt+password)>
//	sha1$$<hex sha1(password)>                                (unsalted_sha1)
//	<32 hex digits> or md5$$<hex md5(password)>               (unsalted_md5)
//
// A hash starting with "!" is Django's unusable password and never
// verifies. Django's "crypt" hasher (Unix crypt(3), DES with 8-character
// passwords) and argon2 hashes without "v=19" (argon2 1.0, from argon2-cffi
// before 16.0) have no implementation in golang.org/x/crypto: they are
// recognised, reported by `importusers`, and never verify.

// Upper bounds on the work a stored hash may ask for. They are far above
// anything Django writes (pbkdf2 1,000,000 iterations in Django 5.2, argon2
// 100 MiB, scrypt 16 MiB) and stop a corrupt row from exhausting the
// process.
const (
	maxPBKDF2Iterations = 10_000_000
	maxArgon2MemoryKiB  = 1 << 20 // 1 GiB
	maxArgon2Passes     = 64
	maxScryptMemory     = 1 << 30 // 128·N·r bytes
	maxScryptParallel   = 64
	maxBcryptPassword   = 72 // bytes bcrypt reads
)

// DjangoHasher names the Django hasher that wrote encoded ("pbkdf2_sha256",
// "unsalted_md5", …), as Django's identify_hasher does, and whether
// switchboard can verify it. It returns "unusable" for Django's unusable
// password ("!…") and "" for a string no Django hasher wrote.
func DjangoHasher(encoded string) (algorithm string, supported bool) {
	switch {
	case strings.HasPrefix(encoded, "!"):
		return "unusable", false
	case len(encoded) == 32 && !strings.Contains(encoded, "$"),
		len(encoded) == 37 && strings.HasPrefix(encoded, "md5$$"):
		return "unsalted_md5", true
	case len(encoded) == 46 && strings.HasPrefix(encoded, "sha1$$"):
		return "unsalted_sha1", true
	}
	algorithm, _, ok := strings.Cut(encoded, "$")
	if !ok {
		return "", false
	}
	switch algorithm {
	case "pbkdf2_sha256", "pbkdf2_sha1", "bcrypt_sha256", "bcrypt", "scrypt", "sha1", "md5":
		return algorithm, true
	case "argon2":
		parts := strings.Split(encoded, "$")
		return algorithm, len(parts) == 6 && parts[2] == "v=19" && (parts[1] == "argon2id" || parts[1] == "argon2i")
	case "crypt":
		return algorithm, false
	}
	return "", false
}

// verifyDjango checks password against a Django hash. known is false when
// encoded is not a Django hash switchboard can verify (a switchboard
// bcrypt hash, an unusable or unsupported one); ok is then false.
func verifyDjango(encoded, password string) (ok, known bool) {
	algorithm, supported := DjangoHasher(encoded)
	if !supported {
		return false, false
	}
	switch algorithm {
	case "pbkdf2_sha256":
		return verifyDjangoPBKDF2(encoded, password, sha256.New), true
	case "pbkdf2_sha1":
		return verifyDjangoPBKDF2(encoded, password, sha1.New), true
	case "argon2":
		return verifyDjangoArgon2(encoded, password), true
	case "bcrypt_sha256":
		sum := sha256.Sum256([]byte(password))
		return verifyDjangoBcrypt(encoded, hex.EncodeToString(sum[:])), true
	case "bcrypt":
		return verifyDjangoBcrypt(encoded, password), true
	case "scrypt":
		return verifyDjangoScrypt(encoded, password), true
	case "sha1":
		return verifyDjangoSalted(encoded, password, sha1.New), true
	case "md5":
		return verifyDjangoSalted(encoded, password, md5.New), true
	case "unsalted_sha1":
		sum := sha1.Sum([]byte(password))
		return equalStrings(encoded[len("sha1$$"):], hex.EncodeToString(sum[:])), true
	case "unsalted_md5":
		sum := md5.Sum([]byte(password))
		return equalStrings(strings.TrimPrefix(encoded, "md5$$"), hex.EncodeToString(sum[:])), true
	}
	return false, false
}

func equalStrings(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// verifyDjangoPBKDF2 checks "pbkdf2_<digest>$iterations$salt$base64(hash)";
// the key length is the stored hash's (Django uses the digest size).
func verifyDjangoPBKDF2(encoded, password string, h func() hash.Hash) bool {
	parts := strings.SplitN(encoded, "$", 4)
	if len(parts) != 4 || parts[2] == "" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter <= 0 || iter > maxPBKDF2Iterations {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(h, password, []byte(parts[2]), iter, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// verifyDjangoArgon2 checks "argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash"
// (salt and hash in unpadded base64, as argon2-cffi writes them).
func verifyDjangoArgon2(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[2] != "v=19" {
		return false
	}
	var m, t, p uint64
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return false
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return false
		}
		seen++
	}
	if seen != 3 || m == 0 || m > maxArgon2MemoryKiB || t == 0 || t > maxArgon2Passes || p == 0 || p > 255 || m < 8*p {
		return false
	}
	salt, err1 := decodeUnpadded(parts[4])
	want, err2 := decodeUnpadded(parts[5])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(want) < 4 || len(want) > 1024 {
		return false
	}
	var got []byte
	switch parts[1] {
	case "argon2id":
		got = argon2.IDKey([]byte(password), salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	case "argon2i":
		got = argon2.Key([]byte(password), salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// decodeUnpadded decodes standard base64 with or without its padding.
func decodeUnpadded(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// verifyDjangoBcrypt checks "bcrypt$<bcrypt hash>" or
// "bcrypt_sha256$<bcrypt hash>" against the (already digested) secret.
// Django's plain bcrypt hasher lets bcrypt read only the first 72 bytes,
// so this does too: the password Django accepted is accepted here.
func verifyDjangoBcrypt(encoded, secret string) bool {
	_, data, _ := strings.Cut(encoded, "$")
	if !strings.HasPrefix(data, "$2") {
		return false
	}
	if len(secret) > maxBcryptPassword {
		secret = secret[:maxBcryptPassword]
	}
	return bcrypt.CompareHashAndPassword([]byte(data), []byte(secret)) == nil
}

// verifyDjangoScrypt checks Django 4.2's "scrypt$N$salt$r$p$base64(hash)".
func verifyDjangoScrypt(encoded, password string) bool {
	parts := strings.SplitN(encoded, "$", 6)
	if len(parts) != 6 || parts[2] == "" {
		return false
	}
	n, err1 := strconv.Atoi(parts[1])
	r, err2 := strconv.Atoi(parts[3])
	p, err3 := strconv.Atoi(parts[4])
	if err1 != nil || err2 != nil || err3 != nil || n < 2 || n&(n-1) != 0 || r < 1 || p < 1 || p > maxScryptParallel ||
		int64(n) > maxScryptMemory/128/int64(r) {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 1024 {
		return false
	}
	got, err := scrypt.Key([]byte(password), []byte(parts[2]), n, r, p, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// verifyDjangoSalted checks "sha1$salt$hex" and "md5$salt$hex", the digest
// of salt followed by the password.
func verifyDjangoSalted(encoded, password string, h func() hash.Hash) bool {
	parts := strings.SplitN(encoded, "$", 3)
	if len(parts) != 3 || parts[1] == "" {
		return false
	}
	d := h()
	d.Write([]byte(parts[1] + password))
	return equalStrings(parts[2], hex.EncodeToString(d.Sum(nil)))
}

// failureTiming makes every failed password check take as long as the
// slowest recent check, so the time a failure takes does not tell whether
// the username exists or which hasher (and cost) its stored hash uses: an
// unknown user costs one bcrypt at BCRYPT_COST, an imported Django user
// whatever Django's parameters cost (pbkdf2 at 260,000 iterations, argon2 at
// 100 MiB), a switchboard user one bcrypt. Each check's own duration is
// observed; a failure then sleeps up to the longest one seen in the current
// or the previous window. Successes are never delayed. NewUserStore gives
// each store one; a PasswordHasher without one does not equalise.
type failureTiming struct {
	mu       sync.Mutex
	window   time.Time // start of the current window
	cur, prv time.Duration
}

// failureTimingWindow is how long a slow check keeps raising the floor;
// failureTimingCap bounds it, so a stall (a GC pause, an overloaded host)
// cannot slow every failed login for long.
const (
	failureTimingWindow = time.Minute
	failureTimingCap    = 2 * time.Second
)

// observe records a check that took d and returns the floor failures are
// held to.
func (f *failureTiming) observe(now time.Time, d time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch elapsed := now.Sub(f.window); {
	case elapsed >= 2*failureTimingWindow:
		f.window, f.cur, f.prv = now, 0, 0
	case elapsed >= failureTimingWindow:
		f.window, f.cur, f.prv = now, 0, f.cur
	}
	f.cur = max(f.cur, min(d, failureTimingCap))
	return max(f.cur, f.prv)
}

// done is deferred by every password check that started at start: it
// records the check's duration and, if it failed, waits until the floor
// has passed. A nil *failureTiming does nothing.
func (f *failureTiming) done(start time.Time, ok bool) {
	if f == nil {
		return
	}
	now := time.Now()
	d := now.Sub(start)
	floor := f.observe(now, d)
	if !ok && d < floor {
		time.Sleep(floor - d)
	}
}
