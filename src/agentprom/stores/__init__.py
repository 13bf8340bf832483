"""Optional stores fed from the JSONL journal: PostgreSQL tables and Redis Streams (docs/stores.md)."""
