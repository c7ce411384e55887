"""Incidents and their impact / cascade zones."""
