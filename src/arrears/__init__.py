"""arrears: automatic restriction, suspension and restoration of services in arrears."""

__version__ = "0.1.0"
