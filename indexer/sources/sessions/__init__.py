"""Session transcripts (JSONL) as a source: their formats, turns, runs of turns, and the session folders."""
