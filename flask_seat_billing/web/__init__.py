"""The blueprint: checkout, billing portal and webhook routes."""
