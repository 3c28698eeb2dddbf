package netlisten

import (
	"net"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestRetryingMovesPastTakenPorts(t *testing.T) {
	taken, err := Retrying("127.0.0.1", 0, 0)
	testkit.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	ln, err := Retrying("127.0.0.1", port, 5)
	if err == nil { // the next ports may be taken by others too; one of the five was free
		defer ln.Close()
		got := ln.Addr().(*net.TCPAddr).Port
		testkit.True(t, got > port && got <= port+5, "bound %d, want one of %d..%d", got, port+1, port+5)
	}
	_, err = Retrying("127.0.0.1", port, 0)
	testkit.True(t, err != nil, "bound a taken port")
}
