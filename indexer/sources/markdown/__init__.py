"""Markdown notes: parse (frontmatter, blocks with line maps) and chunk by line ranges."""
