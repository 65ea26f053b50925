"""The package version, at the bottom layer so that every stage (the emitters' headers, fusionc) can read it."""
__version__ = "0.1.0"
