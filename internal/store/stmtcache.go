package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the cache. The services' SQL is a fixed set of
// texts written in the code, a few hundred in all; texts built per call
// (IN lists of varying length) would otherwise grow it without end, and
// past the bound they simply run unprepared.
const maxCachedStmts = 512

// stmtCache keeps one prepared statement per SQL text. Compiling SQL is
// a large part of a short query's cost in SQLite (about a quarter of the
// compute API's CPU in a profile at scale); a *sql.Stmt is prepared once
// per connection and then reused by every caller and transaction on it.
// A nil cache prepares nothing.
type stmtCache struct {
	db      *sql.DB
	mu      sync.RWMutex
	m       map[string]*sql.Stmt
	pending map[string]bool // being prepared in the background (peek)
	closed  bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// get returns q's statement, preparing it on first use; nil when the
// cache is full or the text does not prepare (the caller then runs it
// unprepared, so the error surfaces there, where it is handled).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st, ok := c.lookup(q); ok {
		return st
	}
	return c.prepare(ctx, q)
}

// peek returns q's statement if it is prepared already. A transaction
// must not prepare through the pool: preparing takes a connection, and
// while the transaction holds the write lock every other connection may
// be waiting for that lock, so it would wait for them and they for it.
// A miss is prepared in the background instead, for the next caller.
func (c *stmtCache) peek(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	st, ok := c.lookup(q)
	if ok {
		return st
	}
	c.mu.Lock()
	start := !c.pending[q] && len(c.m)+len(c.pending) < maxCachedStmts
	if start {
		c.pending[q] = true
	}
	c.mu.Unlock()
	if start {
		go func() {
			c.prepare(context.Background(), q)
			c.mu.Lock()
			delete(c.pending, q)
			c.mu.Unlock()
		}()
	}
	return nil
}

func (c *stmtCache) lookup(q string) (*sql.Stmt, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.m[q]
	return st, ok
}

func (c *stmtCache) prepare(ctx context.Context, q string) *sql.Stmt {
	c.mu.RLock()
	full := len(c.m) >= maxCachedStmts || c.closed
	c.mu.RUnlock()
	if full {
		return nil
	}
	// Prepared outside the lock: two callers may both prepare the same
	// text, and the loser's statement is closed.
	st, err := c.db.PrepareContext(context.WithoutCancel(ctx), q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok {
		st.Close()
		return prev
	}
	if len(c.m) >= maxCachedStmts || c.closed {
		st.Close()
		return nil
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
