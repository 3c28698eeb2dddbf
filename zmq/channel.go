package zmq

// Channel names one of a kernel's five sockets.
type Channel uint8

// The kernel channels. Shell, Control and Stdin are request/reply channels
// (DEALER here, ROUTER in the kernel); IOPub is the broadcast channel (SUB
// here, PUB in the kernel); Heartbeat echoes.
const (
	Shell Channel = iota
	Control
	Stdin
	IOPub
	Heartbeat
)

var channelNames = [...]string{"shell", "control", "stdin", "iopub", "hb"}

func (c Channel) String() string {
	if int(c) < len(channelNames) {
		return channelNames[c]
	}
	return "unknown"
}

// ParseChannel maps a websocket channel name to a Channel. Only the channels
// a client may send on or receive from are accepted (not hb).
func ParseChannel(s string) (Channel, bool) {
	for i, n := range channelNames[:Heartbeat] {
		if n == s {
			return Channel(i), true
		}
	}
	return 0, false
}
