"""edgecall: the call-centre edge appliance daemon."""

__version__ = "0.1.0"
