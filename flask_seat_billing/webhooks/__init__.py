"""The generic webhook path: after a provider's parser, dedupe, re-read, store, once."""
