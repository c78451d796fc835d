"""PK battles: two live streams compete for the coin value of the gifts they receive."""
