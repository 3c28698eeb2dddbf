// Package actors is kernelgate's actor tree on protoactor-go: the gateway
// actor (registry and admission) and one kernel actor per kernel (launch,
// channels, state, restart, shutdown), with the process proxies below them in
// actors/proxy.
//
// Other packages use the Gateway type, which turns calls into messages. State
// lives in the actor that owns it; what other goroutines read often (the
// kernel list, each kernel's model) is published as immutable snapshots and
// atomics by its single writer, never guarded by a shared lock.
package actors
