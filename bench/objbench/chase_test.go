package main

import "testing"

// The memory probe times a walk through chaseTable; the walk covers all
// 16 MiB only if the table is one cycle through every entry.
func TestChaseTableIsOneCycle(t *testing.T) {
	next := chaseTable()
	p, steps := uint32(0), 0
	for {
		p = next[p]
		steps++
		if p == 0 || steps > len(next) {
			break
		}
	}
	if steps != len(next) {
		t.Fatalf("the walk from 0 came back after %d steps, want %d", steps, len(next))
	}
}
