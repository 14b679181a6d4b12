package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// startEcho starts a TCP echo server on loopback and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// startProxy starts a delayProxy to upstream and returns its address.
func startProxy(t *testing.T, upstream string, delay time.Duration) (*delayProxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newDelayProxy(upstream, delay)
	served := make(chan error, 1)
	go func() { served <- p.serve(ln) }()
	t.Cleanup(func() {
		p.close()
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve returned %v after close, want net.ErrClosed", err)
		}
	})
	return p, ln.Addr().String()
}

func TestDelayProxyRoundTrip(t *testing.T) {
	const delay = 5 * time.Millisecond
	_, addr := startProxy(t, startEcho(t), delay)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	for range 3 {
		t0 := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(t0); got < 2*delay {
			t.Errorf("round trip took %v, want >= %v (delay each way)", got, 2*delay)
		}
		if string(buf) != "ping" {
			t.Errorf("got %q, want ping", buf)
		}
	}
}

// TestDelayProxyPipelines checks that the delay is latency, not a pause
// per chunk: messages sent 2 ms apart through 10 ms each way come back 2 ms
// apart, in order, about 20 ms late, not 10 ms per message one after the
// other.
func TestDelayProxyPipelines(t *testing.T) {
	const (
		delay = 10 * time.Millisecond
		msgs  = 30
		gap   = 2 * time.Millisecond
	)
	_, addr := startProxy(t, startEcho(t), delay)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	go func() {
		for i := range msgs {
			_, _ = c.Write([]byte{byte(i)})
			time.Sleep(gap)
		}
	}()
	got := make([]byte, msgs)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("message %d arrived as %d: order broken (%v)", i, b, got)
		}
	}
	// Pipelined: ~msgs*gap + 2*delay = 80 ms; a pause per chunk would take
	// at least msgs*delay = 300 ms.
	if took > 250*time.Millisecond {
		t.Errorf("%d messages took %v: the delay is serializing chunks", msgs, took)
	}
}

func TestDelayProxyBulkAndClose(t *testing.T) {
	p, addr := startProxy(t, startEcho(t), time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 4<<20)
	_, _ = rand.Read(want)
	go func() { _, _ = c.Write(want) }()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("4 MiB through the proxy came back different")
	}
	// close with the connection still open: it must return, and the
	// client must see the connection end.
	done := make(chan struct{})
	go func() { p.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return with a connection open")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(got[:1]); err == nil {
		t.Error("read after close succeeded")
	}
}
