"""keepalived: rendering (pure) and supervision (process)."""
