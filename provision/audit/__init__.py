"""Platform audit: hypervisor settings that cost performance or break OKD.

rules.py holds the rule table (the documentation and the code share it); kvm.py and vsphere.py
are pure functions over data gathered by collect_kvm.py / collect_vsphere.py; compare.py checks
that two clusters are sized alike before their numbers are compared.
"""
