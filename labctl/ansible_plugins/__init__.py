"""Ansible plugins shipped with labctl; connection/ holds `labctl_runc` for namespace containers.

Ansible loads these files by path (ANSIBLE_CONNECTION_PLUGINS), inside its own process: they must
not import labctl.
"""
