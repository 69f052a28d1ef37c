"""Connection plugins; Ansible imports each module here by file path."""
