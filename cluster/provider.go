package cluster

import (
	"sync"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// LazyProvider returns a cluster provider that newProvider builds when the
// member starts, after protoactor-go has started remoting, and that then
// behaves as the provider built. Use it for providers whose constructor
// starts a gRPC client, such as etcd's:
//
//	provider := cluster.LazyProvider(func() (protocluster.ClusterProvider, error) {
//		return etcd.NewWithConfig("/eventsourced", clientv3.Config{Endpoints: endpoints})
//	})
//
// protoactor-go's remoting replaces gRPC's global logger when it starts,
// without synchronization: a gRPC client already running in the process
// (the etcd provider's) reads it meanwhile, a data race. Built after
// remoting, the provider's client starts after that write. An error from
// newProvider fails [Member.Start].
func LazyProvider(newProvider func() (protocluster.ClusterProvider, error)) protocluster.ClusterProvider {
	return &lazyProvider{build: newProvider}
}

type lazyProvider struct {
	build func() (protocluster.ClusterProvider, error)
	mu    sync.Mutex
	p     protocluster.ClusterProvider // built by the first start
}

// get builds the provider once; later calls return the one built.
func (l *lazyProvider) get() (protocluster.ClusterProvider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p == nil {
		p, err := l.build()
		if err != nil {
			return nil, err
		}
		l.p = p
	}
	return l.p, nil
}

func (l *lazyProvider) StartMember(c *protocluster.Cluster) error {
	p, err := l.get()
	if err != nil {
		return err
	}
	return p.StartMember(c)
}

func (l *lazyProvider) StartClient(c *protocluster.Cluster) error {
	p, err := l.get()
	if err != nil {
		return err
	}
	return p.StartClient(c)
}

func (l *lazyProvider) Shutdown(graceful bool) error {
	l.mu.Lock()
	p := l.p
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Shutdown(graceful)
}
