// Package shredtest holds the crypto-shredding scenario that every backend
// runs with the entity runtime, a projection and its key store: personal
// fields never reach the stored bytes in the clear, a forgotten subject
// recovers and projects redacted while others are untouched, and a key
// store that fails makes commands fail with nothing persisted.
package shredtest
