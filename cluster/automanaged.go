package cluster

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/labstack/echo"
)

// NewAutomanagedProvider returns protoactor-go's automanaged provider
// (clusterproviders/automanaged) for members on one host or a LAN, with
// its health endpoint on host:port. Each member serves its address and
// kinds over HTTP at GET /_health on that port, and polls peers (every
// member's "host:port", itself included) every refresh to learn the
// membership. The endpoint is plain HTTP, unauthenticated.
//
// automanaged.NewWithConfig serves the same endpoint on every interface
// (0.0.0.0) whatever the member's address; this provider listens only on
// host, typically the host of [WithAddress]. The port is taken when the
// member starts: [Member.Start] fails if it is in use, and
// [Member.Shutdown] closes it.
func NewAutomanagedProvider(host string, port int, refresh time.Duration, peers ...string) (protocluster.ClusterProvider, error) {
	if host == "" || port <= 0 || port > 65535 || refresh <= 0 || len(peers) == 0 {
		return nil, fmt.Errorf("%w: NewAutomanagedProvider(%q, %d, %v, %d peers)", ErrInvalid, host, port, refresh, len(peers))
	}
	p := &automanagedProvider{addr: net.JoinHostPort(host, strconv.Itoa(port)), port: port}
	p.srv = echo.New()
	p.srv.HideBanner = true
	p.srv.HidePort = true
	p.srv.GET("/_health", func(c echo.Context) error {
		node := p.node.Load()
		if node == nil {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.JSON(http.StatusOK, node)
	})
	// NewWithTesting is the only constructor that takes the HTTP server;
	// "testing" only means the provider does not build its own, which
	// would listen on 0.0.0.0. Echo serves on a listener set beforehand
	// (StartMember's) instead of listening itself.
	p.AutoManagedProvider = automanaged.NewWithTesting(refresh, port, p.srv, peers...)
	return p, nil
}

// automanagedProvider is protoactor-go's automanaged provider with its
// health endpoint's listener bound by StartMember.
type automanagedProvider struct {
	*automanaged.AutoManagedProvider
	addr string
	port int
	srv  *echo.Echo
	node atomic.Pointer[automanaged.NodeModel] // what /_health answers; nil until StartMember
}

// StartMember implements cluster.ClusterProvider: it listens on the
// provider's address and then lets the automanaged provider serve there.
func (p *automanagedProvider) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("cluster: automanaged health endpoint: %w", err)
	}
	// The same answer as the automanaged provider's own endpoint.
	p.node.Store(automanaged.NewNode(c.Config.Name, c.ActorSystem.ID, host, port, p.port, c.GetClusterKinds()))
	p.srv.Listener = ln // read by the goroutine AutoManagedProvider.StartMember starts
	return p.AutoManagedProvider.StartMember(c)
}
