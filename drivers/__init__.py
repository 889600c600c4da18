"""Drivers for in-store hardware over serial lines: transport → framing → protocol → device."""
