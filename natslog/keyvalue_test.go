package natslog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/keystore"
)

func TestKeyValueRoundTrip(t *testing.T) {
	k, err := keystore.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	v, err := encodeKeyValue(k)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2+len(k.ID)+keystore.KeySize || v[0] != 1 || int(v[1]) != len(k.ID) {
		t.Errorf("encoded %d bytes starting %v", len(v), v[:2])
	}
	got, err := decodeKeyValue(v)
	if err != nil || got.ID != k.ID || !bytes.Equal(got.Material, k.Material) {
		t.Errorf("decode: key %q, %v; want %q", got.ID, err, k.ID)
	}
	v[len(v)-1] ^= 1
	if bytes.Equal(got.Material, v[len(v)-keystore.KeySize:]) {
		t.Errorf("the decoded material aliases the value")
	}
}

func TestKeyValueDecodeErrors(t *testing.T) {
	id := "0123456789abcdef"
	good := append([]byte{1, byte(len(id))}, id...)
	good = append(good, make([]byte, keystore.KeySize)...)
	for _, tc := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"empty", nil, "empty, not a stored key"},
		{"version 0", append([]byte{0}, good[1:]...), "format version 0, want 1"},
		{"version only", []byte{1}, "1 bytes with no key ID"},
		{"no ID", append([]byte{1, 0}, make([]byte, keystore.KeySize)...), "34 bytes with no key ID"},
		{"short material", good[:len(good)-1], "49 bytes, want 50 for a 16-byte key ID and 32 bytes of material"},
		{"trailing byte", append(bytes.Clone(good), 0), "51 bytes, want 50"},
	} {
		_, err := decodeKeyValue(tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	for _, k := range []keystore.Key{{ID: "", Material: make([]byte, 32)}, {ID: strings.Repeat("x", 256), Material: make([]byte, 32)}, {ID: "x", Material: make([]byte, 16)}} {
		if _, err := encodeKeyValue(k); err == nil {
			t.Errorf("encodeKeyValue of ID %d bytes, %d bytes of material: no error", len(k.ID), len(k.Material))
		}
	}
}
