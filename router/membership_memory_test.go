package router_test

import (
	"testing"

	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/router/membershiptest"
)

func TestMemoryMembership(t *testing.T) {
	membershiptest.Run(t, func(*testing.T) router.Membership { return router.NewMemoryMembership(nil) })
}
