package conformancetest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Names makes names unique to one run of one case, so that backends sharing
// a database across cases and runs still see fresh streams, keys and
// offsets. They use only lower-case letters, digits and underscores, which
// every backend accepts as a name.
type Names struct{ prefix string }

// NewNames returns names for the running case: its subtest name, shortened
// and made safe, and a random suffix.
func NewNames(t TB) Names {
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 24 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return Names{prefix: fmt.Sprintf("%s_%08x", b.String(), rand.Uint32())}
}

// Type returns the entity type named s.
func (n Names) Type(s string) string { return "t_" + n.prefix + "_" + s }

// ID returns the entity id named s.
func (n Names) ID(s string) string { return "i_" + n.prefix + "_" + s }

// Name returns the projection (or other) name s.
func (n Names) Name(s string) string { return "p_" + n.prefix + "_" + s }

// Fill returns prefix followed by filler up to exactly n bytes of valid
// UTF-8 that does not compress: runes drawn at random, seeded by prefix,
// from several scripts and the characters that subject- and key-based
// backends escape.
func Fill(prefix string, n int) string {
	alphabet := []rune("aZ9_-.*> /\\=$%é日本語🙂ßЖ\t")
	seed := uint64(len(prefix))
	for _, c := range []byte(prefix) {
		seed = seed*1099511628211 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := []byte(prefix)
	for len(b) < n {
		c := alphabet[r.IntN(len(alphabet))]
		if len(b)+utf8.RuneLen(c) > n {
			c = rune('a' + r.IntN(26))
		}
		b = utf8.AppendRune(b, c)
	}
	return string(b)
}
