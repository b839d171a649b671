"""Platform audit: hypervisor settings that cost performance or break OKD, and those that expose the VMs.

rules.py holds the rule table (the documentation and the code share it); kvm.py and vsphere.py
are pure functions over data gathered by collect_kvm.py / collect_vsphere.py; compare.py checks
that two clusters are sized alike before their numbers are compared. The security rule set
(security_rules.py) is judged by kvm_security.py / vsphere_security.py over what
collect_kvm_security.py and collect_vsphere.py read.
"""
