package group_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

var bg = context.Background()
