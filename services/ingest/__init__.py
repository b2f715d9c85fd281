"""ingest: validates each declared source's raw topic (JSON or RawEvent) into typed Event records; rejects go
to events.dlq."""
