"""Stream health: the encoder's reports and ingest's samples, averaged, and a warning."""
