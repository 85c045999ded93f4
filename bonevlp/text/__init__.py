"""French radiology reports: robust reading, de-identification with surrogates, cleaning, and finding labels."""
