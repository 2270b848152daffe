package destination

// PacedUsers reports how many users the client keeps pacing state for:
// in lanes, and resting.
func (c *Client) PacedUsers() (lanes, resting int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lanes), len(c.resting)
}
