"""Live polls: one vote per viewer, counted in batches, totals coalesced per tick."""
