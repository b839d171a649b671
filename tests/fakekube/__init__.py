"""A focused, scripted Kubernetes/OpenShift API server for the project's tests (see cluster.FakeCluster)."""

from tests.fakekube.cluster import FakeCluster, NodePerf, Timings
from tests.fakekube.server import Faults

__all__ = ["FakeCluster", "Faults", "NodePerf", "Timings"]
