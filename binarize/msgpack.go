package binarize

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpackFormat is [Msgpack].
//
// It does not use msgpack.Marshal and msgpack.Unmarshal: Marshal lets the
// output grow from an empty buffer on every call, and Unmarshal turns on
// value preallocation, which starts a goroutine per decoded type that never
// ends. The pooled encoders and decoders below are configured once.
type msgpackFormat struct{}

// maxBufferRetain caps the buffer an encoder keeps in the pool, so one huge
// value does not pin its memory for the life of the process.
const maxBufferRetain = 64 << 10

// msgpackEncoder is a pooled encoder with the buffer it writes into.
type msgpackEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var msgpackEncoders = sync.Pool{New: func() any {
	e := new(msgpackEncoder)
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.SetCustomStructTag("json")
	e.enc.UseCompactInts(true)
	e.enc.SetSortMapKeys(true)
	return e
}}

// msgpackDecoder is a pooled decoder with the reader it reads from.
type msgpackDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var msgpackDecoders = sync.Pool{New: func() any {
	d := new(msgpackDecoder)
	d.dec = msgpack.NewDecoder(&d.r)
	d.dec.SetCustomStructTag("json")
	d.dec.UseLooseInterfaceDecoding(true)
	return d
}}

func (msgpackFormat) Name() string { return "msgpack" }

func (f msgpackFormat) Marshal(v any) ([]byte, error) { return f.appendMarshal(nil, v) }

// appendMarshal implements appendFormat: the pooled encoder's buffer is
// copied out once, to the end of dst.
func (msgpackFormat) appendMarshal(dst []byte, v any) (b []byte, err error) {
	e := msgpackEncoders.Get().(*msgpackEncoder)
	defer func() {
		if r := recover(); r != nil {
			// The encoder's state is unknown after a panic: drop it.
			b, err = nil, libError("msgpack", "msgpack:", panicError(r))
			return
		}
		if e.buf.Cap() > maxBufferRetain {
			e.buf = bytes.Buffer{}
		}
		msgpackEncoders.Put(e)
	}()
	e.buf.Reset()
	// ResetWriter keeps the flags set when the encoder was made; Reset
	// would clear them.
	e.enc.ResetWriter(&e.buf)
	if err := e.enc.Encode(v); err != nil {
		return nil, libError("msgpack", "msgpack:", err)
	}
	if dst == nil {
		return bytes.Clone(e.buf.Bytes()), nil
	}
	return append(dst, e.buf.Bytes()...), nil
}

func (msgpackFormat) Unmarshal(data []byte, v any) (err error) {
	if err := checkMsgpack(data); err != nil {
		return libError("msgpack", "msgpack:", err)
	}
	d := msgpackDecoders.Get().(*msgpackDecoder)
	defer func() {
		if r := recover(); r != nil {
			// The decoder's state is unknown after a panic: drop it.
			err = libError("msgpack", "msgpack:", panicError(r))
			return
		}
		d.r.Reset(nil)
		// The decoder keeps a scratch buffer as long as the longest string
		// it read, at most len(data): keep only decoders of small inputs.
		if len(data) <= maxBufferRetain {
			msgpackDecoders.Put(d)
		}
	}()
	d.r.Reset(data)
	d.dec.ResetReader(&d.r)
	if err := d.dec.Decode(v); err != nil {
		return libError("msgpack", "msgpack:", err)
	}
	if d.r.Len() != 0 {
		// checkMsgpack has seen exactly one value, so this means a custom
		// decoder stopped early.
		return fmt.Errorf("binarize: msgpack: %d bytes left after the value", d.r.Len())
	}
	return nil
}

// maxMsgpackDepth bounds the nesting of arrays and maps, like encoding/json
// and protobuf do, so deep input cannot exhaust the decoder's stack.
const maxMsgpackDepth = 10000

var errMsgpackTruncated = errors.New("msgpack: truncated input")

// checkMsgpack reports whether data is exactly one well-formed MessagePack
// value whose nesting is at most maxMsgpackDepth deep. It also checks every
// length against the bytes left: every element still expected needs at
// least one byte, so the decoder never preallocates more elements than the
// input holds, which a corrupt or hostile array or map header would
// otherwise make it do (the msgpack decoder sizes slices from the header).
func checkMsgpack(data []byte) error {
	var stackBuf [16]uint64
	// stack holds, per open array or map, the number of items it still
	// expects; pending is their sum.
	stack := stackBuf[:0]
	var pending uint64
	i := 0
	for {
		if i >= len(data) {
			return errMsgpackTruncated
		}
		at := i
		c := data[i]
		i++
		var (
			skip  uint64 // payload bytes after the header
			items uint64 // items in an array or map (keys and values)
			n     uint64
			err   error
		)
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		case c <= 0x8f: // fixmap
			items = 2 * uint64(c&0x0f)
		case c <= 0x9f: // fixarray
			items = uint64(c & 0x0f)
		case c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc4, 0xd9: // bin8, str8
				n, i, err = readMsgpackLen(data, i, 1)
				skip = n
			case 0xc5, 0xda: // bin16, str16
				n, i, err = readMsgpackLen(data, i, 2)
				skip = n
			case 0xc6, 0xdb: // bin32, str32
				n, i, err = readMsgpackLen(data, i, 4)
				skip = n
			case 0xc7: // ext8: length, type, data
				n, i, err = readMsgpackLen(data, i, 1)
				skip = 1 + n
			case 0xc8: // ext16
				n, i, err = readMsgpackLen(data, i, 2)
				skip = 1 + n
			case 0xc9: // ext32
				n, i, err = readMsgpackLen(data, i, 4)
				skip = 1 + n
			case 0xcc, 0xd0: // uint8, int8
				skip = 1
			case 0xcd, 0xd1: // uint16, int16
				skip = 2
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				skip = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				skip = 8
			case 0xd4: // fixext1: type, data
				skip = 1 + 1
			case 0xd5: // fixext2
				skip = 1 + 2
			case 0xd6: // fixext4
				skip = 1 + 4
			case 0xd7: // fixext8
				skip = 1 + 8
			case 0xd8: // fixext16
				skip = 1 + 16
			case 0xdc: // array16
				items, i, err = readMsgpackLen(data, i, 2)
			case 0xdd: // array32
				items, i, err = readMsgpackLen(data, i, 4)
			case 0xde: // map16
				n, i, err = readMsgpackLen(data, i, 2)
				items = 2 * n
			case 0xdf: // map32
				n, i, err = readMsgpackLen(data, i, 4)
				items = 2 * n
			default: // 0xc1 is never used
				return fmt.Errorf("msgpack: invalid code %#x at offset %d", c, at)
			}
		}
		if err != nil {
			return err
		}
		if skip > uint64(len(data)-i) {
			return errMsgpackTruncated
		}
		i += int(skip)
		// This value fills one slot of the array or map it is in.
		if len(stack) > 0 {
			stack[len(stack)-1]--
			pending--
		}
		// Every item still expected needs at least one byte.
		if pending > uint64(len(data)-i) {
			return errMsgpackTruncated
		}
		if items > 0 {
			if len(stack) >= maxMsgpackDepth {
				return fmt.Errorf("msgpack: nesting deeper than %d at offset %d", maxMsgpackDepth, at)
			}
			if items > uint64(len(data)-i)-pending {
				return fmt.Errorf("msgpack: %s at offset %d claims %d items, more than the %d bytes left", containerKind(c), at, items, len(data)-i)
			}
			stack = append(stack, items)
			pending += items
		}
		for len(stack) > 0 && stack[len(stack)-1] == 0 {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			break
		}
	}
	if i != len(data) {
		return fmt.Errorf("msgpack: %d bytes of trailing data after the value", len(data)-i)
	}
	return nil
}

// readMsgpackLen reads a big-endian length of size bytes at data[i:].
func readMsgpackLen(data []byte, i, size int) (uint64, int, error) {
	if len(data)-i < size {
		return 0, i, errMsgpackTruncated
	}
	b := data[i : i+size]
	switch size {
	case 1:
		return uint64(b[0]), i + 1, nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), i + 2, nil
	default:
		return uint64(binary.BigEndian.Uint32(b)), i + 4, nil
	}
}

func containerKind(c byte) string {
	if c <= 0x8f || c >= 0xde {
		return "map"
	}
	return "array"
}
