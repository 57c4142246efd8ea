"""Reference implementation of the I2S conductor service (see ../README.md)."""

__version__ = "2.1.0-ref"
