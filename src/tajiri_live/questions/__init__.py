"""Q&A: viewers ask and upvote, the broadcaster answers or dismisses."""
