"""Real components the project's tests start: libvirtd in a netns, the vCenter simulator, a Kubernetes API.

Every module here is loaded as a pytest plugin by tests/conftest.py.
"""
