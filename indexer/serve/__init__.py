"""The warm process (one model, a reader, optionally the writer) and the MCP server over it."""
