package models

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestVerifyMissingUsesConfiguredCost: the dummy comparison for an unknown
// user runs at the hasher's own cost; at any other cost, login time would
// tell which usernames exist.
func TestVerifyMissingUsesConfiguredCost(t *testing.T) {
	for _, cost := range []int{0, 4, 5} {
		PasswordHasher{Cost: cost}.VerifyMissing("whatever-password")
		want := cost
		if want == 0 {
			want = bcrypt.DefaultCost
		}
		h, ok := dummyHashes.Load(want)
		if !ok {
			t.Fatalf("VerifyMissing at cost %d stored no dummy hash for cost %d", cost, want)
		}
		if got, err := bcrypt.Cost(h.([]byte)); err != nil || got != want {
			t.Errorf("VerifyMissing at cost %d compared against a cost %d hash (%v), want %d", cost, got, err, want)
		}
	}
}
