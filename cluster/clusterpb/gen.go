// Package clusterpb holds the two protobuf messages package cluster sends
// between members: [CommandEnvelope] and [ReplyEnvelope]. Only these types
// cross the wire, so members never need to know the user's command types.
//
// Regenerate envelope.pb.go after editing envelope.proto (needs protoc, e.g.
// the Debian package protobuf-compiler, and protoc-gen-go v1.36.12 on PATH):
//
//	go generate ./cluster/clusterpb
package clusterpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative envelope.proto
