package models_test

import (
	"context"
	"testing"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// TestInsertKeepsFalseFlags: a user inserted inactive stays inactive on
// every dialect. A GORM `default:true` tag on IsActive used to turn the
// zero value into the database default, true.
func TestInsertKeepsFalseFlags(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			store, db := newStore(t, dialect)
			u := &models.User{Username: "inactive", PasswordHash: "!", IsActive: false}
			if err := db.Create(u).Error; err != nil {
				t.Fatal(err)
			}
			got, err := store.Get(context.Background(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.IsActive || got.IsStaff {
				t.Errorf("inserted is_active=false is_staff=false, read back is_active=%v is_staff=%v", got.IsActive, got.IsStaff)
			}
		})
	}
}
