package shred

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The envelope of protected bytes:
//
//	magic (4 bytes: 0x00 0xC5 'S' version 1)
//	uvarint len | subject
//	uvarint len | key ID
//	nonce (12 bytes)
//	uvarint len | AES-256-GCM ciphertext of the personal fields
//	the inner codec's bytes of the value with its personal fields zeroed
//
// No bytes of JSON, protobuf or msgpack structs start with 0x00 (JSON has
// no such character, protobuf has no field 0, msgpack structs and arrays
// start with a map or array header), so unprotected bytes, those written
// before a type was protected among them, are told apart by their first
// byte and decoded as they are.
var magic = []byte{0x00, 0xC5, 'S', 1}

const nonceSize = 12

// envelope is a parsed envelope.
type envelope struct {
	subject, keyID string
	nonce          []byte
	sealed         []byte
	inner          []byte
}

// protectedBytes reports whether data starts with the envelope's magic.
func protectedBytes(data []byte) bool { return bytes.HasPrefix(data, magic) }

// seal appends the envelope of env to out.
func (env *envelope) appendTo(out []byte) []byte {
	out = append(out, magic...)
	out = binary.AppendUvarint(out, uint64(len(env.subject)))
	out = append(out, env.subject...)
	out = binary.AppendUvarint(out, uint64(len(env.keyID)))
	out = append(out, env.keyID...)
	out = append(out, env.nonce...)
	out = binary.AppendUvarint(out, uint64(len(env.sealed)))
	out = append(out, env.sealed...)
	return append(out, env.inner...)
}

var errEnvelope = errors.New("shred: malformed envelope")

// parseEnvelope parses data, which starts with magic. The slices of the
// result alias data.
func parseEnvelope(data []byte) (envelope, error) {
	var env envelope
	rest := data[len(magic):]
	field := func(what string, max int) ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) || n > uint64(max) {
			return nil, fmt.Errorf("%w: bad %s length at byte %d", errEnvelope, what, len(data)-len(rest))
		}
		b := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return b, nil
	}
	subject, err := field("subject", 255)
	if err != nil {
		return env, err
	}
	keyID, err := field("key ID", 255)
	if err != nil {
		return env, err
	}
	if len(rest) < nonceSize {
		return env, fmt.Errorf("%w: truncated nonce at byte %d", errEnvelope, len(data)-len(rest))
	}
	env.nonce, rest = rest[:nonceSize], rest[nonceSize:]
	if env.sealed, err = field("ciphertext", len(rest)); err != nil {
		return env, err
	}
	env.subject, env.keyID, env.inner = string(subject), string(keyID), rest
	return env, nil
}

// additionalData binds a ciphertext to everything around it: the event
// name and revision, the subject and key, and the inner bytes, so that no
// part can be swapped for another event's without Open failing.
func additionalData(name string, revision uint32, env *envelope) []byte {
	b := make([]byte, 0, len(name)+len(env.subject)+len(env.keyID)+len(env.inner)+16)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, revision)
	b = binary.AppendUvarint(b, uint64(len(env.subject)))
	b = append(b, env.subject...)
	b = binary.AppendUvarint(b, uint64(len(env.keyID)))
	b = append(b, env.keyID...)
	return append(b, env.inner...)
}
