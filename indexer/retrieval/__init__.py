"""Search: query terms, candidates, fusion, ranking stages, filters, the reading budget."""
