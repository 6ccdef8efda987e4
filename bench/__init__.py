"""`make bench`: figures for every issue, printed as tables (never timed assertions)."""
