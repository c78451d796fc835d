"""tajiri-live: a self-hosted livestreaming backend for the TAJIRI mobile app."""

__version__ = "0.1.0"
