"""The vm kind (KVM/QEMU through libvirt). driver_for() imports VmDriver from here."""

from labctl.drivers.vm.driver import VmDriver

__all__ = ["VmDriver"]
