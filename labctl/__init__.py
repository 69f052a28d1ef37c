"""labctl: declarative labs of VMs, LXC containers and namespace containers."""

__version__ = "0.1.0"
