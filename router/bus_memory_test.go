package router_test

import (
	"testing"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/bustest"
)

func TestMemoryBus(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func(string) router.Bus {
		net := router.NewMemoryNetwork()
		return func(node string) router.Bus { return net.Bus(node) }
	})
}
