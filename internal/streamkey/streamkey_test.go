package streamkey_test

import (
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/streamkey"
)

func TestCheck(t *testing.T) {
	long := strings.Repeat("é", 128) // 256 bytes
	for _, tc := range []struct {
		typ, id string
		want    string // "" for accepted, else a substring of the message
	}{
		{"Acct", "a", ""},
		{"Acct", strings.Repeat("x", streamkey.MaxLen), ""},
		{strings.Repeat("T", streamkey.MaxLen), "a", ""},
		{"Acct", strings.Repeat("é", 127) + "x", ""}, // 255 bytes of unicode
		{"Acct", "a.b c*>/\\\"", ""},
		{"", "a", "empty entity type"},
		{"Acct", "", `empty entity id of type Acct`},
		{"Acct", strings.Repeat("x", streamkey.MaxLen+1), "is 256 bytes, over the limit of 255"},
		{"Acct", long, "is 256 bytes, over the limit of 255"},
		{strings.Repeat("T", 300), "a", "entity type"},
		{"Acct", "a\xffb", "not valid UTF-8"},
		{"Acct", "a\x00b", "NUL byte"},
	} {
		got := streamkey.Check(tc.typ, tc.id)
		switch {
		case tc.want == "" && got != "":
			t.Errorf("Check(%.20q, %.20q) = %q, want accepted", tc.typ, tc.id, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("Check(%.20q, %.20q) = %q, want it to say %q", tc.typ, tc.id, got, tc.want)
		}
		if len(got) > 200 {
			t.Errorf("Check(%.20q, %.20q): %d-byte message, want a bounded one", tc.typ, tc.id, len(got))
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"acc-1", "acc-1"},
		{"user@x.io", "user@x.io"},
		{"a b", `"a b"`},
		{"a/b", `"a/b"`},
		{"a\nb", `"a\nb"`},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
		{strings.Repeat("x", 10240), `"` + strings.Repeat("x", 64) + `"… (10240 bytes)`},
		// Cut at a character boundary: é is 2 bytes, 64 is even, 65 is not.
		{"x" + strings.Repeat("é", 40), `"x` + strings.Repeat("é", 31) + `"… (81 bytes)`},
	} {
		if got := streamkey.Format(tc.in); got != tc.want {
			t.Errorf("Format(%.20q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
