"""esim-monitor: keeps prepaid and eSIM lines alive."""

__version__ = "0.1.0"
