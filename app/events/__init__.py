"""Suspected events: alarms grouped in space and data time, localised to the assets that
explain them."""
