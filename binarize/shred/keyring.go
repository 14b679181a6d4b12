package shred

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// keyring is a key store with a cache in front: keys of subjects for ttl,
// and forever the IDs of keys known to be gone, which never come back
// (IDs are random and a forgotten subject gets a new one), so reading the
// events of a forgotten subject asks the store once, not once per event.
type keyring struct {
	store   keystore.Store
	ttl     time.Duration
	timeout time.Duration
	max     int

	mu   sync.Mutex // guards the maps
	live map[string]*liveKey
	dead map[string]struct{} // key IDs
}

// liveKey is a cached key and its cipher.
type liveKey struct {
	id      string
	aead    cipher.AEAD
	expires time.Time
}

func newKeyring(store keystore.Store, c config) *keyring {
	return &keyring{store: store, ttl: c.ttl, timeout: c.timeout, max: c.cacheSize,
		live: map[string]*liveKey{}, dead: map[string]struct{}{}}
}

// forEncrypt returns the subject's key, creating one if it has none.
func (r *keyring) forEncrypt(ctx context.Context, subject string) (*liveKey, error) {
	if k := r.cached(subject); k != nil {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key, err := r.store.GetOrCreate(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("shred: key of subject %s: %w", eventlog.FormatID(subject), err)
	}
	return r.remember(subject, key)
}

// forDecrypt returns the key of subject with ID id, nil if it is gone.
func (r *keyring) forDecrypt(ctx context.Context, subject, id string) (*liveKey, error) {
	r.mu.Lock()
	_, gone := r.dead[id]
	r.mu.Unlock()
	if gone {
		return nil, nil
	}
	if k := r.cached(subject); k != nil && k.id == id {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key, found, err := r.store.Get(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("shred: key of subject %s: %w", eventlog.FormatID(subject), err)
	}
	if !found || key.ID != id {
		r.bury(id)
		if !found {
			return nil, nil
		}
	}
	k, err := r.remember(subject, key)
	if err != nil || k.id != id {
		return nil, err
	}
	return k, nil
}

// cached returns the subject's key if it is cached and fresh.
func (r *keyring) cached(subject string) *liveKey {
	if r.ttl <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.live[subject]
	if k == nil || time.Now().After(k.expires) {
		return nil
	}
	return k
}

// remember caches key as the subject's.
func (r *keyring) remember(subject string, key keystore.Key) (*liveKey, error) {
	if len(key.Material) != keystore.KeySize {
		return nil, fmt.Errorf("shred: key %s of subject %s has %d bytes, want %d", key.ID, eventlog.FormatID(subject), len(key.Material), keystore.KeySize)
	}
	block, err := aes.NewCipher(key.Material)
	if err != nil {
		return nil, fmt.Errorf("shred: key of subject %s: %w", eventlog.FormatID(subject), err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("shred: key of subject %s: %w", eventlog.FormatID(subject), err)
	}
	k := &liveKey{id: key.ID, aead: aead, expires: time.Now().Add(r.ttl)}
	if r.ttl > 0 {
		r.mu.Lock()
		if len(r.live) >= r.max {
			evictOne(r.live)
		}
		r.live[subject] = k
		r.mu.Unlock()
	}
	return k, nil
}

// bury records that the key id is gone for good.
func (r *keyring) bury(id string) {
	r.mu.Lock()
	if len(r.dead) >= r.max {
		evictOne(r.dead)
	}
	r.dead[id] = struct{}{}
	r.mu.Unlock()
}

// forget deletes the subject's key from the store and from the cache.
func (r *keyring) forget(ctx context.Context, subject string) error {
	if err := r.store.Forget(ctx, subject); err != nil {
		return fmt.Errorf("shred: forget subject %s: %w", eventlog.FormatID(subject), err)
	}
	r.mu.Lock()
	if k := r.live[subject]; k != nil {
		delete(r.live, subject)
		r.dead[k.id] = struct{}{}
	}
	r.mu.Unlock()
	return nil
}

// evictOne deletes an arbitrary entry of m: Go's map iteration order is
// random, which makes this a random eviction, good enough for a cache
// whose misses cost one store call.
func evictOne[V any](m map[string]V) {
	for k := range m {
		delete(m, k)
		return
	}
}
