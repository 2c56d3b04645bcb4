"""Tests of the provider stand-ins, driven through the real provider SDKs."""
