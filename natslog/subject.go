package natslog

import (
	"fmt"
	"strings"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// maxPrefix bounds the length of a subject prefix ([WithPrefix]).
const maxPrefix = 128

// maxSubject bounds the length of an event subject: the longest type and
// id the event log accepts (eventlog.MaxTypeLen and MaxIDLen, 255 bytes
// each), escaped at 3 bytes a byte, behind the longest prefix. The NATS
// protocol line that carries a subject (4 KiB by default) also holds the
// direct-get or KV prefix, the reply subject and sizes, which fit beside it.
const maxSubject = maxPrefix + 1 + 3*eventlog.MaxTypeLen + 1 + 3*eventlog.MaxIDLen

// literal reports whether b stands for itself in a token. Every other byte
// is escaped, so a token is a valid subject token and a valid KV key token
// whatever the entity type or id.
func literal(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

const hexDigits = "0123456789ABCDEF"

// encodeToken returns s as one subject token: letters, digits, '_' and '-'
// stand for themselves and every other byte becomes '=' and two upper-case
// hex digits, so "user@x.io" is "user=40x=2Eio". Distinct strings give
// distinct tokens, and [decodeToken] reverses it. A string that needs no
// escaping is returned as is, without allocating.
func encodeToken(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !literal(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if literal(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '=', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(b)
}

// appendToken appends encodeToken(s) to dst.
func appendToken(dst []byte, s string) []byte {
	i := 0
	for i < len(s) && literals[s[i]] {
		i++
	}
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if literals[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '=', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// literals tells, for each byte, whether it is literal: one lookup on the
// hot path of appendToken instead of literal's comparisons.
var literals = func() (t [256]bool) {
	for b := range t {
		t[b] = literal(byte(b))
	}
	return t
}()

// decodeToken reverses [encodeToken].
func decodeToken(tok string) (string, error) {
	i := strings.IndexByte(tok, '=')
	if i < 0 {
		return tok, nil
	}
	b := make([]byte, 0, len(tok))
	b = append(b, tok[:i]...)
	for ; i < len(tok); i++ {
		c := tok[i]
		if c != '=' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("natslog: bad token %q: truncated escape", tok)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("natslog: bad token %q: bad escape %q", tok, tok[i:i+3])
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// subjects builds and parses the subjects of one stream prefix.
type subjects struct {
	prefix string // with a trailing dot
}

// entity returns the subject of the stream (typ, id), or an error matching
// [eventlog.ErrInvalid] if it would be too long.
func (s subjects) entity(typ, id string) (string, error) {
	t, i := encodeToken(typ), encodeToken(id)
	n := len(s.prefix) + len(t) + 1 + len(i)
	if n > maxSubject {
		return "", s.tooLong(typ, id, n)
	}
	return s.prefix + t + "." + i, nil
}

// tooLong is the error of entity for a subject of n bytes.
func (s subjects) tooLong(typ, id string, n int) error {
	return fmt.Errorf("%w: natslog: the subject of %s/%s would be %d bytes, over the limit of %d", eventlog.ErrInvalid, eventlog.FormatID(typ), eventlog.FormatID(id), n, maxSubject)
}

// subjectOf returns the subject of the stream (typ, id), as
// subjects.entity does, and what the cache remembers of it: its entry e
// (nil if none) and tail t. The subject of a remembered entity is the
// entry's, so an append to it builds no string.
func (l *Log) subjectOf(typ, id string) (subj string, e *centry, t tail, err error) {
	var buf [160]byte // longer subjects grow on the heap
	key := append(buf[:0], l.subjects.prefix...)
	key = appendToken(key, typ)
	key = append(key, '.')
	key = appendToken(key, id)
	if n := len(key); n > maxSubject {
		return "", nil, tail{}, l.subjects.tooLong(typ, id, n)
	}
	if e, t = l.cache.lookup(key); e != nil {
		return e.subj, e, t, nil
	}
	return string(key), nil, tail{}, nil
}

// tombIndex returns the subject that lists, for EntityIDs, the stream of
// event subject subj as one that DeleteStream tombstoned: subj with one
// more token, which no filter of event subjects matches.
func tombIndex(subj string) string { return subj + ".deleted" }

// tombFilter returns the subject filter of the tombIndex subjects of type
// typ, given the type's filter.
func tombFilter(typeFilter string) string { return typeFilter + ".deleted" }

// typeFilter returns the subject filter of every stream of type typ.
func (s subjects) typeFilter(typ string) (string, error) {
	t := encodeToken(typ)
	if n := len(s.prefix) + len(t) + 2; n > maxSubject {
		return "", fmt.Errorf("%w: natslog: the subject of type %s would be %d bytes, over the limit of %d", eventlog.ErrInvalid, eventlog.FormatID(typ), n, maxSubject)
	}
	return s.prefix + t + ".*", nil
}

// id returns the entity id of subject subj, whose type filter is filter.
func (s subjects) id(filter, subj string) (string, error) {
	base := filter[:len(filter)-1] // without the '*'
	if !strings.HasPrefix(subj, base) || strings.IndexByte(subj[len(base):], '.') >= 0 {
		return "", fmt.Errorf("natslog: subject %q is not an event subject of %q", subj, filter)
	}
	return decodeToken(subj[len(base):])
}

// allFilter returns the subject filter of every stream of every type:
// <prefix>.*.*. The tombIndex subjects, one token longer, do not match it.
func (s subjects) allFilter() string { return s.prefix + "*.*" }

// streamFilter returns the stream's own subject filter, <prefix>.>: every
// message of the stream, events and the tombIndex subjects alike. The
// server reads by it without matching each message's subject against a
// wildcard, which with many subjects costs it far more than the reading
// (see scan).
func (s subjects) streamFilter() string { return s.prefix + ">" }

// inType reports whether subj is an event subject of the type whose filter
// is typeFilter, and returns its id token.
func (s subjects) inType(typeFilter, subj string) (idTok string, ok bool) {
	base := typeFilter[:len(typeFilter)-1] // without the '*'
	rest, ok := strings.CutPrefix(subj, base)
	if !ok || rest == "" || strings.IndexByte(rest, '.') >= 0 {
		return "", false
	}
	return rest, true
}

// isEvent reports whether subj, a subject of the stream, is an event
// subject: <prefix>.<type>.<id>, not a tombIndex one.
func (s subjects) isEvent(subj string) bool {
	rest, ok := strings.CutPrefix(subj, s.prefix)
	if !ok {
		return false
	}
	typ, id, ok := strings.Cut(rest, ".")
	return ok && typ != "" && id != "" && strings.IndexByte(id, '.') < 0
}

// tokens returns the type and id tokens of subj, an event subject of any
// type, still encoded.
func (s subjects) tokens(subj string) (typ, id string, err error) {
	rest, ok := strings.CutPrefix(subj, s.prefix)
	if ok {
		typ, id, ok = strings.Cut(rest, ".")
	}
	if !ok || typ == "" || id == "" || strings.IndexByte(id, '.') >= 0 {
		return "", "", fmt.Errorf("natslog: subject %q is not an event subject of %q", subj, s.allFilter())
	}
	return typ, id, nil
}
