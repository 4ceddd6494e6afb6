"""Plan and apply changes to the index: sync, the writer, reports, check, rebuild, recovery."""
