package models_test

import (
	"strings"
	"testing"

	"switchboard/models"
)

// djangoPassword is the password of every vector in djangoVectors.
const djangoPassword = "correct horse ✓ battery"

// djangoVectors were written by Django 3.2's own hashers (Debian's
// python3-django, with python3-argon2 and python3-bcrypt) at low cost, and
// each was checked with django.contrib.auth.hashers.check_password. The
// argon2i and scrypt ones were written in Django's formats with
// argon2.low_level.hash_secret and hashlib.scrypt (Django 3.2 writes
// argon2id only and has no scrypt hasher). TestImportFromDjango has a real
// Django write the same formats at its own parameters.
var djangoVectors = []struct {
	algorithm, encoded string
}{
	{"pbkdf2_sha256", "pbkdf2_sha256$1000$NaCl1234$fwNkGUVT/B5yv+/18gDTy47SF3jVWl9KNdqoq3Kkggg="},
	{"pbkdf2_sha1", "pbkdf2_sha1$1000$NaCl1234$tPbtPLzGubhpE4EfW4mJLHtjt3M="},
	{"argon2", "argon2$argon2id$v=19$m=64,t=1,p=2$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg"},
	{"argon2", "argon2$argon2i$v=19$m=32,t=2,p=1$c2FsdHNhbHRzYWx0$rndKuCnS67MdoopTAHHUVw"},
	{"bcrypt_sha256", "bcrypt_sha256$$2b$04$fdN62HXvMzNkeMnQ3Dsi.uFqOTwxzGqUY9/h0Y5nzAN8na7SgT0t6"},
	{"bcrypt", "bcrypt$$2b$04$fdN62HXvMzNkeMnQ3Dsi.upzqdGeXIRRHMBgaJnZXyFo4zBRG4NXS"},
	{"scrypt", "scrypt$16$scryptsalt$8$2$1PhikNxhzGrwc5Q4qYRZjp142Q/fumSy/lPsiP+POh/FulUPaIabr03pD1tyZ4FISl8uRK9yLER+zD856B5kMQ=="},
	{"sha1", "sha1$s4lt$a2556ebf010b962f7f6344f81174c7bf8663882d"},
	{"md5", "md5$s4lt$645a37b388eb6af6b1480fb845682fd4"},
	{"unsalted_sha1", "sha1$$b752dce6bb598af50a5403be70c339c13ea79fb7"},
	{"unsalted_md5", "a7a59626e7c40fae7f3734a153be60e6"},
	{"unsalted_md5", "md5$$a7a59626e7c40fae7f3734a153be60e6"},
}

func TestPasswordDjangoHashers(t *testing.T) {
	h := models.PasswordHasher{Cost: 4}
	for _, tt := range djangoVectors {
		t.Run(tt.algorithm, func(t *testing.T) {
			if alg, ok := models.DjangoHasher(tt.encoded); alg != tt.algorithm || !ok {
				t.Errorf("DjangoHasher(%q) = %q, %v; want %q, true", tt.encoded, alg, ok, tt.algorithm)
			}
			if ok, rehash := h.Verify(tt.encoded, djangoPassword); !ok || !rehash {
				t.Errorf("Verify(%q, right password) = %v, %v; want true, true", tt.encoded, ok, rehash)
			}
			for _, wrong := range []string{"", djangoPassword + "x", strings.ToUpper(djangoPassword), djangoPassword[:len(djangoPassword)-1]} {
				if ok, _ := h.Verify(tt.encoded, wrong); ok {
					t.Errorf("Verify(%q, %q) = true, want false", tt.encoded, wrong)
				}
			}
		})
	}
}

// TestPasswordDjangoBcrypt72: Django's plain bcrypt hasher lets bcrypt read
// the first 72 bytes only, so what Django accepted is accepted (Django's
// check_password returns True for the same three cases).
func TestPasswordDjangoBcrypt72(t *testing.T) {
	const enc = "bcrypt$$2b$04$fdN62HXvMzNkeMnQ3Dsi.udRi/B4opWFoWxINvwo3osQ4E94pEOEy" // of 72 × "x"
	x72 := strings.Repeat("x", 72)
	tests := []struct {
		password string
		want     bool
	}{
		{x72, true},
		{x72 + "extra", true},
		{x72[:71], false},
	}
	for _, tt := range tests {
		if ok, _ := (models.PasswordHasher{Cost: 4}).Verify(enc, tt.password); ok != tt.want {
			t.Errorf("Verify(bcrypt of 72 x, %d bytes) = %v, want %v", len(tt.password), ok, tt.want)
		}
	}
}

// TestPasswordDjangoMalformed: damaged hashes, parameters out of range and
// formats switchboard cannot verify never verify, and never panic.
func TestPasswordDjangoMalformed(t *testing.T) {
	tests := []struct {
		name, encoded string
		algorithm     string
		supported     bool
	}{
		{"unusable", "!3Xjz0Vrn2gkMN8YhPiSw1sLqQsd9xn6kS2Hv7Ovv", "unusable", false},
		{"unusable empty", "!", "unusable", false},
		{"crypt", "crypt$$ab1Hv2Lg7ltQo", "crypt", false},
		{"argon2 v=16", "argon2$argon2i$m=32,t=2,p=1$c2FsdHNhbHRzYWx0$rndKuCnS67MdoopTAHHUVw", "argon2", false},
		{"argon2d", "argon2$argon2d$v=19$m=32,t=2,p=1$c2FsdHNhbHRzYWx0$rndKuCnS67MdoopTAHHUVw", "argon2", false},
		{"empty", "", "", false},
		{"no algorithm", "nothing-here", "", false},
		{"unknown algorithm", "sha512$salt$abcd", "", false},
		{"pbkdf2 sha1 bad iterations", "pbkdf2_sha1$-5$NaCl1234$tPbtPLzGubhpE4EfW4mJLHtjt3M=", "pbkdf2_sha1", true},
		{"pbkdf2 empty salt", "pbkdf2_sha256$1000$$fwNkGUVT/B5yv+/18gDTy47SF3jVWl9KNdqoq3Kkggg=", "pbkdf2_sha256", true},
		{"argon2 huge memory", "argon2$argon2id$v=19$m=4294967295,t=1,p=2$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 zero passes", "argon2$argon2id$v=19$m=64,t=0,p=2$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 zero lanes", "argon2$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 300 lanes", "argon2$argon2id$v=19$m=4096,t=1,p=300$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 memory below 8 per lane", "argon2$argon2id$v=19$m=8,t=1,p=2$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 unknown parameter", "argon2$argon2id$v=19$m=64,t=1,x=2$c2FsdHNhbHRzYWx0$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"argon2 bad salt", "argon2$argon2id$v=19$m=64,t=1,p=2$!!!$79EyHGfGIUwh+rMzXtI0dg", "argon2", true},
		{"bcrypt not bcrypt", "bcrypt$notbcrypt", "bcrypt", true},
		{"bcrypt_sha256 truncated", "bcrypt_sha256$$2b$04$fdN62HXvMzNkeMnQ3D", "bcrypt_sha256", true},
		{"scrypt N not a power of two", "scrypt$15$scryptsalt$8$2$1PhikNxhzGrwc5Q4qYRZjp142Q==", "scrypt", true},
		{"scrypt N huge", "scrypt$1073741824$scryptsalt$8$1$1PhikNxhzGrwc5Q4qYRZjp142Q==", "scrypt", true},
		{"scrypt p huge", "scrypt$16$scryptsalt$8$100000$1PhikNxhzGrwc5Q4qYRZjp142Q==", "scrypt", true},
		{"scrypt too few parts", "scrypt$16$scryptsalt$8$2", "scrypt", true},
		{"sha1 empty salt, wrong length", "sha1$$b752dce6", "sha1", true},
		{"md5 wrong digest", "md5$s4lt$00000000000000000000000000000000", "md5", true},
		{"unsalted md5 upper case", "A7A59626E7C40FAE7F3734A153BE60E6", "unsalted_md5", true},
	}
	h := models.PasswordHasher{Cost: 4}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if alg, ok := models.DjangoHasher(tt.encoded); alg != tt.algorithm || ok != tt.supported {
				t.Errorf("DjangoHasher(%q) = %q, %v; want %q, %v", tt.encoded, alg, ok, tt.algorithm, tt.supported)
			}
			if ok, _ := h.Verify(tt.encoded, djangoPassword); ok {
				t.Errorf("Verify(%q) = true, want false", tt.encoded)
			}
		})
	}
}
