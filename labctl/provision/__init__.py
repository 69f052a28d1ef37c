"""Provisioning and access: run a machine's steps, and describe the lab to ssh and Ansible.

steps.Provisioner      shell, file and ansible steps in order, live `web | ...` output
transport              SSH (labctl.ssh) for machines with sshd, the runtime for the others
archive                tar streams for machines that receive files through `tar -x`
ansible.run_playbook   the only caller of ansible_runner.run
inventory              the lab as an Ansible inventory (YAML or INI)
sshconfig              the lab as an OpenSSH client config
"""

from labctl.provision.steps import Provisioner

__all__ = ["Provisioner"]
