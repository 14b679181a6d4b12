package natscluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RunIfChild runs a node's nats-server and exits if this process is a node
// started by [Start] or [Cluster.Restart]; otherwise it returns at once.
// Call it first in main or TestMain of every program that starts a
// cluster. The server runs until the process gets SIGTERM or SIGINT (a
// clean shutdown, exit status 0), is killed, or sees its parent process
// gone; a server that cannot start exits with status 2 after writing why to
// stderr.
func RunIfChild() {
	v, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	os.Exit(runNode(v))
}

// runNode runs the node configured by the JSON cfg and returns the exit
// status.
func runNode(cfgJSON string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "natscluster node: %v\n", err)
		return 2
	}
	var cfg nodeConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fail(fmt.Errorf("bad %s: %w", childEnv, err))
	}
	routes := make([]*url.URL, len(cfg.Routes))
	for i, p := range cfg.Routes {
		routes[i] = &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(p)}
	}
	o := &server.Options{
		ServerName:             cfg.Name,
		Host:                   "127.0.0.1",
		Port:                   cfg.ClientPort,
		HTTPHost:               "127.0.0.1",
		HTTPPort:               cfg.HTTPPort,
		JetStream:              true,
		StoreDir:               cfg.StoreDir,
		NoSigs:                 true,
		Logtime:                true,
		DisableJetStreamBanner: true,
	}
	if len(routes) > 0 { // a node alone runs JetStream unclustered
		o.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: cfg.ClusterPort}
		o.Routes = routes
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return fail(err)
	}
	srv.ConfigureLogger()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	srv.Start()
	down := make(chan struct{})
	go func() {
		srv.WaitForShutdown()
		close(down)
	}()
	// Polling the parent catches its death where Pdeathsig does not exist.
	orphan := time.NewTicker(250 * time.Millisecond)
	defer orphan.Stop()
	for {
		select {
		case s := <-sigs:
			srv.Noticef("natscluster: %v, shutting down", s)
			srv.Shutdown()
			<-down
			return 0
		case <-down:
			return fail(fmt.Errorf("server %s shut down by itself", cfg.Name))
		case <-orphan.C:
			if os.Getppid() != cfg.ParentPID {
				srv.Noticef("natscluster: parent %d is gone, shutting down", cfg.ParentPID)
				srv.Shutdown()
				<-down
				return 0
			}
		}
	}
}
