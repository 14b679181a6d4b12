package binarize

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestCheckMsgpackAcceptsLibraryOutput checks checkMsgpack against the
// library's own encodings of values that cover every code: it accepts each
// encoding, rejects each proper prefix as truncated and rejects trailing
// bytes.
func TestCheckMsgpackAcceptsLibraryOutput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("s", n) }
	values := []any{
		nil, true, false,
		0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, uint64(math.MaxUint64),
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, int64(math.MinInt64),
		float32(1.5), 2.25, math.NaN(),
		"", long(31), long(32), long(255), long(256), long(65536),
		[]byte{}, []byte("bin"), bytes.Repeat([]byte{1}, 256), bytes.Repeat([]byte{2}, 65536),
		[]int{}, []int{1, 2, 3}, make([]int, 16), make([]int, 65536),
		map[string]int{}, map[string]int{"a": 1}, bigMap(16), bigMap(65536),
		[]any{[]any{[]any{}}, map[string]any{"x": []any{nil, "y"}}},
		time.Unix(1, 0), time.Unix(1<<33, 5), time.Date(3000, 1, 1, 0, 0, 0, 1, time.UTC), time.Unix(-1, 0),
		struct {
			A int
			B []string
			C map[string][]byte
		}{1, []string{"x"}, map[string][]byte{"k": {1}}},
	}
	for _, v := range values {
		for _, compact := range []bool{false, true} {
			var buf bytes.Buffer
			enc := msgpack.NewEncoder(&buf)
			enc.UseCompactInts(compact)
			enc.UseCompactFloats(compact)
			if err := enc.Encode(v); err != nil {
				t.Fatalf("Encode(%T): %v", v, err)
			}
			b := buf.Bytes()
			if err := checkMsgpack(b); err != nil {
				t.Errorf("checkMsgpack(encoding of %T %.40v) = %v, want nil", v, v, err)
			}
			for i := 0; i < len(b); i = nextPrefix(i, len(b)) {
				if err := checkMsgpack(b[:i]); err == nil {
					t.Errorf("checkMsgpack(%d of the %d bytes of %T %.40v) = nil, want an error", i, len(b), v, v)
					break
				}
			}
			if err := checkMsgpack(append(b, 0xc0)); err == nil {
				t.Errorf("checkMsgpack(encoding of %T %.40v + trailing byte) = nil, want an error", v, v)
			}
		}
	}
}

// nextPrefix returns the length of the next prefix of an n-byte encoding to
// check: every one of the first and last 64, and 64 in between.
func nextPrefix(i, n int) int {
	if i < 64 || i >= n-64 {
		return i + 1
	}
	return max(i+1, min(i+n/64, n-64))
}

func bigMap(n int) map[string]int {
	m := make(map[string]int, n)
	for i := range n {
		m[string(rune(i+0x100))+"k"] = i
	}
	return m
}

func TestCheckMsgpackExt(t *testing.T) {
	tests := []struct {
		data    []byte
		wantErr bool
	}{
		{[]byte{0xd4, 0x01, 0x00}, false},                         // fixext1
		{[]byte{0xd8, 0x01}, true},                                // fixext16, no data
		{append([]byte{0xd8, 0x01}, make([]byte, 16)...), false},  // fixext16
		{[]byte{0xc7, 0x02, 0x05, 0xaa, 0xbb}, false},             // ext8 of 2
		{[]byte{0xc7, 0x02, 0x05, 0xaa}, true},                    // ext8 of 2, 1 byte
		{[]byte{0xc8, 0x00, 0x01, 0x05, 0xaa}, false},             // ext16 of 1
		{[]byte{0xc9, 0x00, 0x00, 0x00, 0x00, 0x05}, false},       // ext32 of 0
		{[]byte{0x92, 0xd4, 0x01, 0x00, 0xc7, 0x00, 0x01}, false}, // array of two exts
		{[]byte{0x92, 0xd4, 0x01, 0x00}, true},                    // array missing an item
		{[]byte{0x82, 0xa1, 'a', 0x01, 0xa1, 'b'}, true},          // map missing a value
		{[]byte{0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x90}, false},   // map with an empty array value
		{[]byte{0xdc, 0x00, 0x00}, false},                         // array16 of 0
		{[]byte{0xde, 0x00, 0x01, 0xa0, 0xde, 0x00, 0x00}, false}, // map16 of 1: "" -> {}
	}
	for _, tc := range tests {
		if err := checkMsgpack(tc.data); (err != nil) != tc.wantErr {
			t.Errorf("checkMsgpack(%x) = %v, want error: %v", tc.data, err, tc.wantErr)
		}
	}
}
