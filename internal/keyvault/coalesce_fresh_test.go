package keyvault

import (
	"context"
	"testing"
	"time"
)

func TestCoalescerFreshSkipsRememberedResults(t *testing.T) {
	c := NewCoalescer(time.Minute)
	calls := 0
	fn := func(context.Context) (any, error) { calls++; return calls, nil }
	key := coalesceKey{vault: "v", identity: "i", typ: "secret", name: "n"}
	ctx := context.Background()
	if v, _ := c.do(ctx, key, fn); v != 1 {
		t.Fatalf("first call: got %v", v)
	}
	if v, _ := c.do(ctx, key, fn); v != 1 {
		t.Fatalf("within the window the result is reused: got %v", v)
	}
	if v, _ := c.do(WithFresh(ctx), key, fn); v != 2 {
		t.Fatalf("a fresh fetch goes to the vault: got %v", v)
	}
	if v, _ := c.do(ctx, key, fn); v != 2 {
		t.Fatalf("the fresh result is remembered for others: got %v", v)
	}
}
