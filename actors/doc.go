// Package actors is kernelgate's actor tree on protoactor-go: the gateway
// actor (registry, admission, pools) and one kernel actor per kernel (a
// state machine over its launches, sessions and output), with a runner per
// launch doing the kernel's I/O and a writer per websocket; the process
// proxies are below it in actors/proxy. docs/architecture.md lays it out.
//
// Other packages use the Gateway type, which turns calls into messages. State
// lives in the actor that owns it; what other goroutines read often (the
// kernel list, each kernel's model, a kernel's output) is published as
// immutable snapshots, atomics and an append-only log by its single writer,
// never guarded by a shared lock.
package actors
