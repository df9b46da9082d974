"""esim-monitor: keeps prepaid and eSIM lines alive."""

__version__ = "0.1.0"
ENV_PREFIX = "ESIM_MONITOR_"
"""Of the environment variables that set the config file and override its keys."""
DEFAULT_CONFIG = "/etc/esim-monitor/config.toml"
"""The config file without `--config` or `$ESIM_MONITOR_CONFIG`."""
