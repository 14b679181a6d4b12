package streamkey

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest entity type name, and the longest entity id, in
// bytes, that every backend accepts: 255, as a varchar(255) key. Escaped
// as a NATS subject token (3 bytes for every byte that is not a letter,
// digit, '_' or '-'), a type and an id at the limit still fit a subject,
// and PostgreSQL's btree key (about 2.7 KB) holds both even when they do
// not compress.
const MaxLen = 255

// quoteMax is how many bytes of an id or type an error message quotes.
const quoteMax = 64

// Check reports what is wrong with an entity type and id: empty, longer
// than MaxLen, not valid UTF-8, or holding a NUL byte (PostgreSQL's text
// cannot store it). It returns "" if they are fine.
func Check(typ, id string) string {
	if msg := CheckType(typ); msg != "" {
		return msg
	}
	if !valid(id) {
		return wrong("entity id", id, " of type "+Format(typ))
	}
	return ""
}

// CheckType reports what is wrong with an entity type name, "" if nothing.
func CheckType(typ string) string {
	if !valid(typ) {
		return wrong("entity type", typ, "")
	}
	return ""
}

// CheckAs reports what is wrong with s under the same rules, naming it
// what (such as "subject"), "" if nothing.
func CheckAs(what, s string) string {
	if !valid(s) {
		return wrong(what, s, "")
	}
	return ""
}

// valid reports whether s breaks none of the rules. It is on every
// command's path, so it allocates nothing.
func valid(s string) bool {
	return s != "" && len(s) <= MaxLen && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// wrong says which rule s breaks.
func wrong(what, s, of string) string {
	switch {
	case s == "":
		return "empty " + what + of
	case len(s) > MaxLen:
		return fmt.Sprintf("%s %s%s is %d bytes, over the limit of %d", what, Format(s), of, len(s), MaxLen)
	case !utf8.ValidString(s):
		return fmt.Sprintf("%s %s%s is not valid UTF-8", what, Format(s), of)
	}
	return fmt.Sprintf("%s %s%s holds a NUL byte", what, Format(s), of)
}

// Format returns s as an error message quotes it: as it is if it is short
// and printable, else quoted and, past quoteMax bytes, cut at a character
// boundary and followed by its length: "abc…" (300 bytes).
func Format(s string) string {
	if len(s) <= quoteMax && printable(s) {
		return s
	}
	if len(s) <= quoteMax {
		return strconv.Quote(s)
	}
	cut := quoteMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// printable reports whether s needs no quoting: printable ASCII without
// spaces, slashes or quotes, which would make a message ambiguous.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}
