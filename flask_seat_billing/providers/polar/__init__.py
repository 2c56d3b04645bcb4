"""Polar: everything the extension knows about it lives in this folder."""
