package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
)

// The start probe, a workaround (see workarounds.go) for a data race between
// members in one process: Remote.Start writes grpc's global logger without
// synchronization.

// probeName is the actor that receives the start probe.
const probeName = "eventsourced-probe"

// probe orders this member's start before the next member's in the same
// process, as the race detector sees it. protoactor-go's Remote.Start sets
// grpc's global logger without synchronization, and the gRPC server it
// starts reads that logger on its own goroutine; so the next member's
// Remote.Start races with this member's server unless something orders
// them. probe sends one message to this member over its own gRPC server and
// waits until an actor here receives it: that chain (server goroutine,
// connection handler, actor mailbox, channel) orders everything the server
// did before accepting the connection before whatever follows Start. The
// stream ends with the message, so protoactor-go's endpoint reader is gone
// long before Shutdown (its shutdown races with readers still open); the
// connection stays open until the server closes it at Shutdown, because
// closing it earlier makes gRPC log again on its own goroutines.
type probe struct {
	tls  *tls.Config // the member's client TLS configuration (WithTLS); nil: none
	mu   sync.Mutex  // guards conn
	conn net.Conn

	got  chan struct{}
	once sync.Once
}

func newProbe() *probe { return &probe{got: make(chan struct{})} }

// props returns the props of the actor that receives the probe message.
func (p *probe) props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			if _, ok := c.Message().(*clusterpb.CommandEnvelope); ok {
				syncPoint()
				p.once.Do(func() { close(p.got) })
			}
		})
	})
}

// run sends the probe to the member at addr and waits for it. It speaks
// HTTP/2 directly rather than through a grpc.ClientConn, whose goroutines
// would read grpc's global logger themselves, at times nothing orders.
func (p *probe) run(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cluster: start probe: %w", err)
	}
	scheme := "http"
	if p.tls != nil {
		// Remoting serves TLS only: speak it as the member's gRPC client does.
		cfg := p.tls.Clone()
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("cluster: start probe: TLS: %w", err)
		}
		conn, scheme = tc, "https"
	}
	p.mu.Lock()
	p.conn = conn
	p.mu.Unlock()
	env := &clusterpb.CommandEnvelope{EntityType: probeName}
	data, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	batch := &remote.MessageBatch{
		TypeNames: []string{string(env.ProtoReflect().Descriptor().FullName())},
		Targets:   []*actor.PID{actor.NewPID(addr, probeName)},
		Envelopes: []*remote.MessageEnvelope{{TypeId: 0, MessageData: data, Target: 0}},
	}
	msg, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}})
	if err != nil {
		return err
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", scheme}, {":path", "/remote.Remoting/Receive"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	frame := make([]byte, 5+len(msg)) // gRPC message: uncompressed flag, length, bytes
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	copy(frame[5:], msg)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	fr := http2.NewFramer(conn, conn)
	err = errors.Join(
		func() error { _, err := conn.Write([]byte(http2.ClientPreface)); return err }(),
		fr.WriteSettings(),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}),
		fr.WriteData(1, true, frame), // end the stream: the handler returns after the message
	)
	if err != nil {
		return fmt.Errorf("cluster: start probe: %w", err)
	}
	// Speak enough HTTP/2 for the server to finish the stream and keep the
	// connection: acknowledge its settings and pings, read until the
	// stream's trailers.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			return fmt.Errorf("cluster: start probe: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			done = f.StreamEnded()
		case *http2.DataFrame:
			done = f.StreamEnded()
		case *http2.RSTStreamFrame:
			done = true
		case *http2.GoAwayFrame:
			return fmt.Errorf("cluster: start probe: server sent GOAWAY %v", f.ErrCode)
		}
		if err != nil {
			return fmt.Errorf("cluster: start probe: %w", err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	select {
	case <-p.got:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: start probe: %w", ctx.Err())
	}
}

// close closes the probe connection.
func (p *probe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}
