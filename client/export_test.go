package client

// EnqueuedSends is how many Sends c ever took into its queue.
func EnqueuedSends(c *Client) uint64 {
	c.sq.mu.Lock()
	defer c.sq.mu.Unlock()
	return c.sq.enqueued
}
