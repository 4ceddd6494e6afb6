"""Settings: the frozen values a run uses (settings.py) and where each comes from (resolve.py)."""
