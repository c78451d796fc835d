"""Super chats: paid, highlighted messages on a live stream."""
