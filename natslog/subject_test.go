package natslog

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

func TestEncodeToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain_id-42", "plain_id-42"},
		{"a.b", "a=2Eb"},
		{"*", "=2A"},
		{">", "=3E"},
		{"a b\tc\n", "a=20b=09c=0A"},
		{"=", "=3D"},
		{"=41", "=3D41"},
		{"user@x.io", "user=40x=2Eio"},
		{"ü", "=C3=BC"},
		{"\x00\x7f", "=00=7F"},
		{"a/b", "a=2Fb"},
	} {
		got := encodeToken(c.in)
		if got != c.want {
			t.Errorf("encodeToken(%q) = %q, want %q", c.in, got, c.want)
		}
		back, err := decodeToken(got)
		if err != nil || back != c.in {
			t.Errorf("decodeToken(%q) = %q, %v, want %q", got, back, err, c.in)
		}
	}
}

func TestDecodeTokenRejectsBadEscapes(t *testing.T) {
	for _, tok := range []string{"=", "=4", "a=zz", "=4g"} {
		if got, err := decodeToken(tok); err == nil {
			t.Errorf("decodeToken(%q) = %q, want an error", tok, got)
		}
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "a", "a.b.c", "*>", "=3D", "\xff\xfe", "user@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := encodeToken(s)
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !literal(c) && c != '=' && !strings.ContainsRune(hexDigits, rune(c)) {
				t.Fatalf("encodeToken(%q) = %q holds %q", s, tok, c)
			}
		}
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("encodeToken(%q) = %q is not a subject token", s, tok)
		}
		back, err := decodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("decodeToken(encodeToken(%q)) = %q, %v", s, back, err)
		}
	})
}

func TestSubjects(t *testing.T) {
	s := subjects{prefix: "es."}
	subj, err := s.entity("Order", "a.b")
	if err != nil || subj != "es.Order.a=2Eb" {
		t.Fatalf("entity = %q, %v", subj, err)
	}
	filter, err := s.typeFilter("Order")
	if err != nil || filter != "es.Order.*" {
		t.Fatalf("typeFilter = %q, %v", filter, err)
	}
	if id, err := s.id(filter, subj); err != nil || id != "a.b" {
		t.Errorf("id(%q) = %q, %v", subj, id, err)
	}
	for _, bad := range []string{"es.Other.x", "es.Order.x.y", "x.Order.y"} {
		if id, err := s.id(filter, bad); err == nil {
			t.Errorf("id(%q) = %q, want an error", bad, id)
		}
	}
	// The longest type and id the event log accepts fit, escaped at 3
	// bytes a byte behind the longest prefix; a longer subject does not.
	long := subjects{prefix: strings.Repeat("p", maxPrefix) + "."}
	if _, err := long.entity(strings.Repeat(".", eventlog.MaxTypeLen), strings.Repeat("*", eventlog.MaxIDLen)); err != nil {
		t.Errorf("the longest type and id: %v", err)
	}
	if _, err := s.entity("T", strings.Repeat(".", 700)); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("a 2,100-byte subject: got %v, want ErrInvalid", err)
	}
}

func TestTailCacheBounded(t *testing.T) {
	const size = 1000
	c := newTailCache(size)
	for i := range 100 * size {
		c.set(string(rune('a'+i%26))+strings.Repeat("x", i%7)+strconv.Itoa(i), tail{seq: uint64(i), sseq: uint64(i)})
	}
	perShard := (size + cacheShards - 1) / cacheShards
	if n := c.len(); n > perShard*cacheShards || n < size/2 {
		t.Errorf("after 100,000 entries the cache holds %d, want about %d and at most %d", n, size, perShard*cacheShards)
	}
}

func TestTailCacheObserveKeepsNewer(t *testing.T) {
	c := newTailCache(10)
	c.set("s", tail{seq: 5, sseq: 100})
	c.observe("s", tail{seq: 4, sseq: 90})
	if got, _ := c.get("s"); got != (tail{5, 100}) {
		t.Errorf("observe of an older tail replaced a newer one: %+v", got)
	}
	c.observe("s", tail{seq: 6, sseq: 110})
	if got, _ := c.get("s"); got != (tail{6, 110}) {
		t.Errorf("observe of a newer tail: %+v", got)
	}
	c.set("s", tail{seq: 1, sseq: 1})
	if got, _ := c.get("s"); got != (tail{1, 1}) {
		t.Errorf("set must replace: %+v", got)
	}
	c.forget("s")
	if _, ok := c.get("s"); ok {
		t.Error("forget left the entry")
	}
	off := newTailCache(0)
	off.set("s", tail{1, 1})
	if _, ok := off.get("s"); ok || off.len() != 0 {
		t.Error("a cache of size 0 remembered something")
	}
}
