"""Provider webhooks: verify, deduplicate, and re-read what each event is about."""
