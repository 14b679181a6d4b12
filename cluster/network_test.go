package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
)

// otherIP returns a non-loopback IPv4 address of this host, nil if it has
// none (then there is no other address to be reachable on).
func otherIP(t *testing.T) net.IP {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Log("no non-loopback IPv4 address: the listeners cannot be reached from another address")
	return nil
}

// askRemote asks an Add of each member for an entity the other member owns,
// so that the command crosses remoting.
func askRemote(t *testing.T, nodes []node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.m.WaitForMembers(ctx, len(nodes)); err != nil {
			t.Fatalf("WaitForMembers: %v", err)
		}
	}
	for i, n := range nodes {
		id := ""
		for j := 0; id == ""; j++ {
			if c := fmt.Sprint("remote-", i, "-", j); n.m.Owner("Tally", c) != n.m.Address() {
				id = c
			}
		}
		if got, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: id, N: 2}); err != nil || got != 2 {
			t.Fatalf("Ask from %s to an entity of another member = %d, %v; want 2, nil", n.m.Address(), got, err)
		}
	}
}

// Every listener of a member started with NewAutomanagedProvider("127.0.0.1",
// ...) and the default address is on 127.0.0.1: remoting and the health
// endpoint are reachable there and not on the host's other addresses.
func TestAutomanagedProviderListensOnHostOnly(t *testing.T) {
	ip := otherIP(t)
	ports := []int{freeport.Port(t), freeport.Port(t)}
	peers := []string{fmt.Sprint("127.0.0.1:", ports[0]), fmt.Sprint("127.0.0.1:", ports[1])}
	log := eventlog.NewMemory()
	var nodes []node
	var members []*cluster.Member
	for _, port := range ports {
		p, err := cluster.NewAutomanagedProvider("127.0.0.1", port, 100*time.Millisecond, peers...)
		if err != nil {
			t.Fatal(err)
		}
		n := newNode(t, "automan-host", log, p)
		nodes = append(nodes, n)
		members = append(members, n.m)
	}
	defer shutdownAll(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, members...); err != nil {
		t.Fatal(err)
	}
	askRemote(t, nodes)

	for i, n := range nodes {
		host, remotePort, err := net.SplitHostPort(n.m.Address())
		if err != nil {
			t.Fatal(err)
		}
		if host != "127.0.0.1" {
			t.Errorf("member %d: remoting listens on %s, want 127.0.0.1", i, n.m.Address())
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/_health", peers[i]))
		if err != nil {
			t.Fatalf("member %d: health endpoint: %v", i, err)
		}
		var node struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		}
		err = json.NewDecoder(resp.Body).Decode(&node)
		resp.Body.Close()
		if err != nil || net.JoinHostPort(node.Address, strconv.Itoa(node.Port)) != n.m.Address() {
			t.Errorf("member %d: /_health = %+v, %v; want the member's address %s", i, node, err, n.m.Address())
		}
		for _, port := range []string{remotePort, strconv.Itoa(ports[i])} {
			if ip == nil {
				break
			}
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), time.Second)
			if err == nil {
				conn.Close()
				t.Errorf("member %d: port %s is reachable on %s; want 127.0.0.1 only", i, port, ip)
			}
		}
	}
}

func TestAutomanagedProviderStartFailsOnBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	p, err := cluster.NewAutomanagedProvider("127.0.0.1", port, 100*time.Millisecond, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, "automan-busy", eventlog.NewMemory(), p)
	defer shutdownAll(t, []node{n})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.m.Start(ctx); err == nil {
		t.Fatal("Start with the health port in use: no error")
	}
}

func TestNewAutomanagedProviderRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		host    string
		port    int
		refresh time.Duration
		peers   []string
	}{
		{"empty host", "", 6330, time.Second, []string{"127.0.0.1:6330"}},
		{"port 0", "127.0.0.1", 0, time.Second, []string{"127.0.0.1:6330"}},
		{"port too big", "127.0.0.1", 70000, time.Second, []string{"127.0.0.1:6330"}},
		{"no refresh", "127.0.0.1", 6330, 0, []string{"127.0.0.1:6330"}},
		{"no peers", "127.0.0.1", 6330, time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cluster.NewAutomanagedProvider(tc.host, tc.port, tc.refresh, tc.peers...); !errors.Is(err, cluster.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// Remoting runs over mutual TLS with WithTLS: members reach each other's
// entities, and a member's remoting port completes a TLS handshake with the
// certificate it was given.
func TestRemotingOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	server := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13}
	client := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	nodes := startNodes(t, 2, eventlog.NewMemory(), cluster.WithTLS(server, client))
	askRemote(t, nodes)
	conn, err := tls.Dial("tcp", nodes[0].m.Address(), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, NextProtos: []string{"h2"}})
	if err == nil {
		err = conn.Handshake()
	}
	if err != nil {
		t.Fatalf("TLS handshake with remoting at %s: %v", nodes[0].m.Address(), err)
	}
	conn.Close()
	if _, err := cluster.NewMember("tls", eventlog.NewMemory(), nil, cluster.WithTLS(nil, client)); !errors.Is(err, cluster.ErrInvalid) {
		t.Errorf("WithTLS(nil, client): err = %v, want ErrInvalid", err)
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "eventsourced test member"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
