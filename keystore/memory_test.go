package keystore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/keystore/keystoretest"
)

func TestMemory(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) (a, b keystore.Store) {
		m := keystore.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m, m
	})
}

func TestValidateSubject(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    string // "" for valid; else a part of the message
	}{
		{"customer-42", ""},
		{"ü@example.com", ""},
		{strings.Repeat("x", keystore.MaxSubjectLen), ""},
		{"", "empty subject"},
		{strings.Repeat("x", keystore.MaxSubjectLen+1), "is 256 bytes, over the limit of 255"},
		{"a\xffb", "is not valid UTF-8"},
		{"a\x00b", "holds a NUL byte"},
	} {
		err := keystore.ValidateSubject(tc.subject)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateSubject(%q): %v, want nil", tc.subject, err)
		case tc.want == "":
		case !errors.Is(err, keystore.ErrInvalid) || !strings.Contains(err.Error(), tc.want):
			t.Errorf("ValidateSubject(%.20q): got %v, want ErrInvalid saying %q", tc.subject, err, tc.want)
		}
	}
}

func TestNewKeyIsFreshEachTime(t *testing.T) {
	a, err := keystore.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := keystore.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Material) != keystore.KeySize || cap(a.Material) != keystore.KeySize || len(a.ID) != 32 {
		t.Errorf("NewKey: %d bytes of material (cap %d), ID %q; want %d bytes and 32 hex digits", len(a.Material), cap(a.Material), a.ID, keystore.KeySize)
	}
	if a.ID == b.ID || string(a.Material) == string(b.Material) {
		t.Errorf("two NewKey calls share an ID or material: %q, %q", a.ID, b.ID)
	}
}
