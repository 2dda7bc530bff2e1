"""SightScan: recognise the sights of a city."""

__version__ = "0.1.0"
