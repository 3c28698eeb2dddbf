package identity

import (
	"container/list"
	"crypto/sha256"
	"time"
)

// key is a token's SHA-256: caches hold no token in clear (a heap dump or a
// core file does not leak them) and every key has the same small size
// whatever the token's length.
type key [sha256.Size]byte

func keyOf(token string) key { return sha256.Sum256([]byte(token)) }

// lru is a cache of identities with a size bound and an expiry per entry;
// the least recently used entry goes first when it is full. Not safe for
// concurrent use: its owner locks around it.
type lru struct {
	max   int
	ll    *list.List // front: most recently used
	items map[key]*list.Element
}

type entry struct {
	k       key
	id      Identity
	expires time.Time
}

func newLRU(max int) *lru {
	return &lru{max: max, ll: list.New(), items: make(map[key]*list.Element)}
}

// get returns the live entry for k; an expired one is dropped.
func (c *lru) get(k key, now time.Time) (Identity, bool) {
	el, ok := c.items[k]
	if !ok {
		return Identity{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.remove(el)
		return Identity{}, false
	}
	c.ll.MoveToFront(el)
	return e.id, true
}

// put stores id under k until expires, evicting the least recently used
// entries beyond the bound.
func (c *lru) put(k key, id Identity, expires time.Time) {
	if c.max <= 0 {
		return
	}
	if el, ok := c.items[k]; ok {
		e := el.Value.(*entry)
		e.id, e.expires = id, expires
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&entry{k: k, id: id, expires: expires})
	for c.ll.Len() > c.max {
		c.remove(c.ll.Back())
	}
}

func (c *lru) remove(el *list.Element) {
	c.ll.Remove(el)
	delete(c.items, el.Value.(*entry).k)
}

func (c *lru) len() int { return c.ll.Len() }
