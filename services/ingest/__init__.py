"""ingest: validates raw.events (JSON or RawEvent) into typed Event records; rejects go to events.dlq."""
