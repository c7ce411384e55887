"""Stored risk scores per asset and per grid cell or area."""
