"""Sensors, their readings and the latest state of each."""
