// Package freeport hands tests loopback TCP ports for servers they start
// as separate processes, or stop and start again on the same port.
//
// A port found by listening on port 0 and closing the listener comes from
// the kernel's ephemeral range, the range it also draws from for every
// other bind of port 0 and every outgoing connection on the machine: a
// test package running beside this one can take it before the server
// binds it, or while the server is down for a restart. The ports this
// package hands out lie below the ephemeral range (Linux 32768-60999, BSD
// and macOS 49152-65535), so only another program choosing ports the same
// way can collide with them; each port is checked free when handed out,
// and a process never gets the same port twice.
package freeport
