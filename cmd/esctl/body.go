package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// body is an event's data as esctl shows it, without the application's
// codecs: Encoding says how Value was obtained.
type body struct {
	// Encoding is "json", "msgpack", "hex", "encrypted" or "empty".
	Encoding string
	// Value is what JSON output carries: the JSON itself, the msgpack
	// value decoded generically, the hex string, or for encrypted data
	// the envelope's subject and key id.
	Value any
}

// shredMagic starts the envelope of data protected by binarize/shred:
// 0x00 0xC5 'S' and version 1. No JSON, protobuf or msgpack value starts
// with 0x00, so other data is never taken for an envelope.
var shredMagic = []byte{0x00, 0xC5, 'S', 1}

// encrypted is what esctl shows of protected data: the clear parts of the
// envelope, never the ciphertext.
type encrypted struct {
	Subject string `json:"subject"`
	KeyID   string `json:"key_id"`
}

// decodeBody tells what data is, in this order: empty; a binarize/shred
// envelope; JSON; one msgpack map or array that uses every byte and
// converts to JSON; else hex. Requiring a map or array at the top keeps
// short binary values (protobuf among them) from passing for msgpack
// integers.
func decodeBody(data []byte) body {
	switch {
	case len(data) == 0:
		return body{Encoding: "empty"}
	case bytes.HasPrefix(data, shredMagic):
		if e, ok := parseEnvelope(data[len(shredMagic):]); ok {
			return body{Encoding: "encrypted", Value: e}
		}
	case json.Valid(data):
		var buf bytes.Buffer
		if json.Compact(&buf, data) == nil {
			return body{Encoding: "json", Value: json.RawMessage(buf.Bytes())}
		}
	}
	if v, ok := decodeMsgpack(data); ok {
		return body{Encoding: "msgpack", Value: v}
	}
	return body{Encoding: "hex", Value: hex.EncodeToString(data)}
}

// parseEnvelope reads the subject and key id that follow the magic, each
// a uvarint length and at most 255 bytes.
func parseEnvelope(rest []byte) (encrypted, bool) {
	field := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > 255 || n > uint64(len(rest)-k) {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	subject, ok1 := field()
	keyID, ok2 := field()
	return encrypted{Subject: subject, KeyID: keyID}, ok1 && ok2
}

// decodeMsgpack decodes data as one msgpack map or array, with maps of
// string keys, and reports whether that used every byte and the result
// converts to JSON.
func decodeMsgpack(data []byte) (any, bool) {
	c := data[0]
	isMap := msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
	isArray := msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
	if !isMap && !isArray {
		return nil, false
	}
	r := bytes.NewReader(data)
	dec := msgpack.NewDecoder(r)
	var v any
	if err := dec.Decode(&v); err != nil || r.Len() != 0 {
		return nil, false
	}
	if _, err := json.Marshal(v); err != nil {
		return nil, false
	}
	return v, true
}

// String renders b for text output: the encoding, a colon and the value.
func (b body) String() string {
	switch v := b.Value.(type) {
	case nil:
		return b.Encoding
	case encrypted:
		return fmt.Sprintf("encrypted:subject=%s,key=%s", word(v.Subject), word(v.KeyID))
	case string:
		return b.Encoding + ":" + v
	default:
		j, _ := json.Marshal(v)
		return b.Encoding + ":" + string(j)
	}
}
