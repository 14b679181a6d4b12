package binarize_test

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var benchEvent Event = Opened{ID: "acc-123456", Owner: "Ada Lovelace", Tags: []string{"gold", "eu"}}

// benchRegistry measures one Encode and one Decode of e per iteration.
func benchRegistry[E any](b *testing.B, r *binarize.Registry[E], e E) {
	name, rev, data, err := r.Encode(e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, _, err := r.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := r.Decode(name, rev, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _, data, err := r.Encode(e)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := r.Decode(name, rev, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkRegistryMsgpack(b *testing.B) {
	benchRegistry(b, newEvents(b, binarize.Msgpack), benchEvent)
}

func BenchmarkRegistryJSON(b *testing.B) {
	benchRegistry(b, newEvents(b, binarize.JSON), benchEvent)
}

func BenchmarkRegistryProtobuf(b *testing.B) {
	r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](r, "StringValue")
	benchRegistry(b, r, proto.Message(wrapperspb.String("acc-123456 Ada Lovelace gold eu")))
}

// BenchmarkMsgpackLibrary is the baseline for BenchmarkRegistryMsgpack: the
// library's own Marshal and Unmarshal of the same event, no registry.
func BenchmarkMsgpackLibrary(b *testing.B) {
	data, err := msgpack.Marshal(benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(benchEvent); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o Opened
			if err := msgpack.Unmarshal(data, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
