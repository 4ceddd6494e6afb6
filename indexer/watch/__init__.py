"""Keeping the index current in the background: the watcher, its root, its status file, service units."""
